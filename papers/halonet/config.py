"""Configs for "Scaling Local Self-Attention for Parameter Efficient Visual Backbones" (HaloNets, Vaswani et al. 2021).

Run:  python -m papers.halonet.main --config=papers/halonet/config.py:<variant>
Variants:
  h0 ... h7        HaloNet H0-H7 (the paper's appendix table) at their ImageNet image sizes (256 ... 600 px), SiLU,
      the paper's recipe (350 epochs, batch 4096, lr 1.6): need a prepared tfds imagenet2012 and accelerators;
      `--dry_run` prints their parameter and FLOP counts in seconds on a CPU.
  h7_conv1, h7_conv12, h7_conv123   the paper's conv/attention hybrids of H7: 3x3 convs in stage 1 / stages 1-2 /
      stages 1-3 (the paper's 1-based numbering), halo attention in the others.
  halonet50        ResNet-50's layout with every 3x3 conv replaced by b = 8, h = 3 attention, 16 channels per head
      (ReLU, 150 epochs at 256 px: the paper's comparison with ResNet-50).
  fashion_halo     a small HaloNet on offline Fashion-MNIST (CIFAR-style stem, 3 stages of one bottleneck, width 16,
      b = 4, h = 2, 2/4/4 heads), 400 steps of batch 64: a few minutes on 2 CPU cores (the README's
      comparison uses fashion_comparison, its width-8 version).
  fashion_conv     the same network with 3x3 convs (the baseline); fashion_hybrid: convs in the first stage.
  fashion_comparison   fashion_halo at width 8 for 300 steps: the base of the README's halo / SASA / conv
      comparison (configs/sweeps/halonet_comparison.py, `python -m papers.halonet.reproduce`).
  reproduce        fashion_comparison with the strided stem (stages at 14, 7 and 4 px) for 1,000 steps of batch 128,
      test accuracy every 50 steps: the comparison trained to a plateau (configs/sweeps/halonet_reproduce.py).
  smoke            a tiny HaloNet on sklearn digits (8x8, b = 2, h = 1): seconds; what the tests run.
Model fields: name (model.py HALONETS); block_size, halo_size, value_ratio (rv), output_ratio (rb; None: 4x),
final_features (df), num_heads (per stage), head_features (channels per head; replaces num_heads), stem, width,
stage_sizes: None takes the HALONETS row's value. spatial_layer (halo | sasa | conv3x3; sasa: the centred
k = 2h + 1 window of stand-alone self-attention), attention_stages ("all" | "early" | "late" | "none" | 0-based
stage indices like "2,3"; the other stages keep 3x3 convs), impl (auto | xla | pallas: the kernel; auto is Pallas
on TPU, and on GPU for block_size <= 8 in 16-bit floats, where it measured faster than XLA), activation,
bn_momentum (None: 0.9).
"""

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder

from common.registry import lookup
from configs import presets

# variant -> (model name, ImageNet image size) from the paper's table.
H_SERIES = {
    "h0": ("halonet_h0", 256),
    "h1": ("halonet_h1", 256),
    "h2": ("halonet_h2", 256),
    "h3": ("halonet_h3", 320),
    "h4": ("halonet_h4", 384),
    "h5": ("halonet_h5", 448),
    "h6": ("halonet_h6", 512),
    "h7": ("halonet_h7", 600),
}


def _model(name: str, *, spatial_layer: str = "halo", activation: str = "relu", **fields) -> ConfigDict:
    """Architecture fields are typed placeholders: None takes the HALONETS row's value, and any of them can still be
    set from the command line (`--config.model.width=8`)."""
    model = ConfigDict(
        {
            "name": name,
            "stem": placeholder(str),
            "width": placeholder(int),
            "stage_sizes": placeholder(tuple),
            "block_size": placeholder(int),
            "halo_size": placeholder(int),
            "value_ratio": placeholder(float),
            "output_ratio": placeholder(float),
            "final_features": placeholder(int),
            "num_heads": placeholder(tuple),
            "head_features": placeholder(int),
            "spatial_layer": spatial_layer,
            "attention_stages": "all",
            "impl": "auto",
            "activation": activation,
            "bn_momentum": placeholder(float),
        }
    )
    model.update(fields)
    return model


def _imagenet(name: str, image_size: int, *, epochs: int = 350, activation: str = "swish1", **model_fields):
    """The paper's recipe (configs/presets.py imagenet: batch 4096, lr 1.6, 10 warm-up epochs, Nesterov) with
    cosine to 1/128 of the peak and weight decay 2e-5; label smoothing 0.1 with SiLU."""

    def make() -> ConfigDict:
        config = presets.imagenet(epochs=epochs, weight_decay=2e-5, image_size=image_size, final_lr_fraction=1 / 128)
        config.model = _model(name, activation=activation, **model_fields)
        config.label_smoothing = 0.1 if activation == "swish1" else 0.0
        return config

    return make


def _fashion(spatial_layer: str, **model_fields):
    def make() -> ConfigDict:
        config = presets.fashion_mnist_cpu(400)
        config.model = _model("halonet_small", spatial_layer=spatial_layer, **model_fields)
        return config

    return make


def _fashion_comparison() -> ConfigDict:
    """fashion_halo at width 8 for 300 steps: cheap enough to train halo, SASA and conv versions over seeds
    (configs/sweeps/halonet_comparison.py)."""
    config = _fashion("halo")()
    config.model.width = 8
    config.train.update(num_steps=300, log_every=50, checkpoint_every=300)
    return config


def _reproduce() -> ConfigDict:
    """fashion_comparison trained to a plateau: the strided stem cuts the step cost about 4x (measured at batch 128
    on one core: halo 0.33 s, SASA 0.59 s, conv 0.06 s), so the 9 runs of 1,000 steps (2.1 epochs) took 46 minutes on
    2 CPU cores."""
    config = presets.fashion_mnist_reproduce(1000, eval_every=50)
    config.model = _model("halonet_small", spatial_layer="halo", stem="cifar_stride2", width=8)
    return config


def _smoke() -> ConfigDict:
    config = presets.digits_smoke(40, checkpoint_every=20)
    config.model = _model("halonet_tiny")
    return config


VARIANTS = {
    **{variant: _imagenet(name, size) for variant, (name, size) in H_SERIES.items()},
    "h7_conv1": _imagenet("halonet_h7", 600, attention_stages="1,2,3"),
    "h7_conv12": _imagenet("halonet_h7", 600, attention_stages="2,3"),
    "h7_conv123": _imagenet("halonet_h7", 600, attention_stages="3"),
    "halonet50": _imagenet("halonet50", 256, epochs=150, activation="relu"),
    "fashion_halo": _fashion("halo"),
    "fashion_conv": _fashion("conv3x3"),
    "fashion_hybrid": _fashion("halo", attention_stages="1,2"),
    "fashion_comparison": _fashion_comparison,
    "reproduce": _reproduce,
    "smoke": _smoke,
}

# The paper's model-size table: variant -> (parameters in millions, FLOPs in billions; it gives none), measured
# against the built models by `python -m common.sizes --papers=halonet` (the README's model_sizes block).
PAPER_SIZES = {
    "h0": (5.5, None),
    "h1": (8.1, None),
    "h2": (9.4, None),
    "h3": (12.3, None),
    "h4": (19.1, None),
    "h5": (30.7, None),
    "h6": (43.4, None),
    "h7": (67.0, None),
    "halonet50": (18.0, None),
    "h7_conv1": (None, None),
    "h7_conv12": (None, None),
    "h7_conv123": (None, None),
}


def get_config(variant: str = "smoke") -> ConfigDict:
    return lookup(VARIANTS, variant, "halonet config variant")()
