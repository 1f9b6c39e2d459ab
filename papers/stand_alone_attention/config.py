"""Configs for "Stand-Alone Self-Attention in Vision Models" (Ramachandran et al. 2019).

Run:  python -m papers.stand_alone_attention.main --config=papers/stand_alone_attention/config.py:<variant>
Variants:
  r26_baseline, r38_baseline, r50_baseline      ResNet-26/38/50, 3x3 convs, conv stem (Table 1 "baseline")
  r26_conv_stem, r38_conv_stem, r50_conv_stem   every 3x3 conv -> 7x7 local attention, 8 heads; conv stem
  r26_full, r38_full, r50_full                  the same plus the attention stem ("full attention")
      ImageNet at 224 px with the paper's training recipe: need a prepared tfds imagenet2012 and accelerators.
  fashion_baseline, fashion_attention   a small bottleneck ResNet (CIFAR-style stem, 3 stages) on offline
      Fashion-MNIST, 3x3 conv vs 7x7 attention with 4 heads: the CPU-scale comparison.
  fashion_attention_{early,late}        attention in the first / last stage only, 3x3 convs elsewhere
  fashion_attention_{absolute,no_pos}   absolute position embeddings on the keys / no position term
  fashion_ablation    the small-scale ablation base (configs/sweeps/sasa_ablation.py): fashion_attention with
      width 8, 2 heads and 250 steps, so the sweep's 36 runs fit in about an hour on 2 CPU cores.
  reproduce   the ablations' base trained to a plateau (configs/sweeps/sasa_reproduce.py): width 8, 2 heads, k = 7,
      relative positions, attention in the last stage, the strided stem (stages at 14, 7 and 4 px), 800 steps of
      batch 128 with test accuracy every 50 steps.
  smoke       a tiny attention ResNet on sklearn digits: seconds; what the tests run.
Model fields: name (common/nn/resnet.py RESNETS), stem / width / stage_sizes / bn_momentum (None: the table's),
spatial_layer (conv3x3 | attention), kernel_size, num_heads, block_size (0: default_block_size's rule from k and
the map), implementation (blockwise | naive), positional (relative | absolute | none), max_positions (rows of
the absolute tables), attention_stages ("all" | "early" | "late" | comma-separated stage indices such
as "1,2" or "-1": where spatial_layer=attention puts attention; the other stages keep the 3x3 conv).
"""

from ml_collections import ConfigDict
from ml_collections.config_dict import FieldReference, placeholder

from common.registry import lookup
from configs import presets


def _model(name: str, *, spatial_layer: str, stem: str | None = None, kernel_size: int = 7, num_heads: int = 8):
    """stem / width / stage_sizes / bn_momentum are typed placeholders (None: the RESNETS row's value) so the
    command line can still set them (`--config.model.width=8`)."""
    return ConfigDict(
        {
            "name": name,
            "stem": FieldReference(stem, field_type=str),
            "width": placeholder(int),
            "stage_sizes": placeholder(tuple),
            "bn_momentum": placeholder(float),
            "spatial_layer": spatial_layer,
            "kernel_size": kernel_size,
            "num_heads": num_heads,
            "block_size": 0,
            "implementation": "blockwise",
            "positional": "relative",
            "max_positions": 64,
            "attention_stages": "all",
        }
    )


def _imagenet(depth: int, setting: str):
    """The paper's ImageNet recipe (configs/presets.py imagenet): 130 epochs of Nesterov at lr 1.6 (batch 4096),
    10 warm-up epochs, cosine, weight decay 1e-4, EMA of the weights; BatchNorm momentum 0.9999."""

    def make() -> ConfigDict:
        config = presets.imagenet(epochs=130, weight_decay=1e-4, ema_decay=0.9999)
        spatial, stem = {
            "baseline": ("conv3x3", "imagenet"),
            "conv_stem": ("attention", "imagenet"),
            "full": ("attention", "attention"),
        }[setting]
        config.model = _model(f"resnet{depth}", spatial_layer=spatial, stem=stem)
        config.model.bn_momentum = 0.9999
        return config

    return make


def _fashion(spatial_layer: str, **model_fields):
    def make() -> ConfigDict:
        config = presets.fashion_mnist_cpu(600)
        config.model = _model("resnet164", spatial_layer=spatial_layer, kernel_size=7, num_heads=4)
        config.model.update(stage_sizes=(1, 1, 1), width=16, **model_fields)
        return config

    return make


def _fashion_ablation() -> ConfigDict:
    """fashion_attention made cheap enough to train 36 times in about an hour: width 8, 2 heads, 250 steps."""
    config = _fashion("attention")()
    config.model.update(width=8, num_heads=2, max_positions=28)
    config.train.update(num_steps=250, log_every=50, checkpoint_every=250)
    return config


def _reproduce() -> ConfigDict:
    """The base cell of the reproduce-scale ablations: the strided stem quarters the cost of every stage (measured
    at batch 128 on one core: 0.18 s/step, 0.54 s with attention in the first stage instead of the last), so the
    18 runs of 800 steps (1.7 epochs) took about 40 minutes on 2 CPU cores."""
    config = presets.fashion_mnist_reproduce(800, eval_every=50)
    config.model = _model("resnet164", spatial_layer="attention", stem="cifar_stride2", kernel_size=7, num_heads=2)
    config.model.update(stage_sizes=(1, 1, 1), width=8, attention_stages="late", max_positions=16)
    return config


def _smoke() -> ConfigDict:
    config = presets.digits_smoke(40, checkpoint_every=20)
    config.model = _model("resnet_tiny", spatial_layer="attention", kernel_size=3, num_heads=2)
    config.model.block_size = 4
    return config


VARIANTS = {
    "r26_baseline": _imagenet(26, "baseline"),
    "r26_conv_stem": _imagenet(26, "conv_stem"),
    "r26_full": _imagenet(26, "full"),
    "r38_baseline": _imagenet(38, "baseline"),
    "r38_conv_stem": _imagenet(38, "conv_stem"),
    "r38_full": _imagenet(38, "full"),
    "r50_baseline": _imagenet(50, "baseline"),
    "r50_conv_stem": _imagenet(50, "conv_stem"),
    "r50_full": _imagenet(50, "full"),
    "fashion_baseline": _fashion("conv3x3"),
    "fashion_attention": _fashion("attention"),
    "fashion_attention_early": _fashion("attention", attention_stages="early"),
    "fashion_attention_late": _fashion("attention", attention_stages="late"),
    "fashion_attention_absolute": _fashion("attention", positional="absolute", max_positions=28),
    "fashion_attention_no_pos": _fashion("attention", positional="none"),
    "fashion_ablation": _fashion_ablation,
    "reproduce": _reproduce,
    "smoke": _smoke,
}

# Table 1 of the paper: variant -> (parameters in millions, FLOPs in billions at 224 px), measured against the built
# models by `python -m common.sizes --papers=stand_alone_attention` (the README's model_sizes block).
PAPER_SIZES = {
    "r26_baseline": (13.7, 4.7),
    "r26_conv_stem": (10.3, 4.5),
    "r26_full": (10.3, 4.7),
    "r38_baseline": (19.6, 6.5),
    "r38_conv_stem": (14.1, 5.7),
    "r38_full": (14.1, 6.0),
    "r50_baseline": (25.6, 8.2),
    "r50_conv_stem": (18.0, 7.0),
    "r50_full": (18.0, 7.2),
}


def get_config(variant: str = "smoke") -> ConfigDict:
    return lookup(VARIANTS, variant, "stand_alone_attention config variant")()
