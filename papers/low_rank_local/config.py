"""Configs for "Revisiting Spatial Invariance with Low-Rank Local Connectivity" (Elsayed et al. 2020).

Run:  python -m papers.low_rank_local.main --config=papers/low_rank_local/config.py:<variant> \
          [--config.model.layer=lrlc --config.model.rank=4]
Variants:
  default     the paper's small network (3 layers of 3x3/64, stride 1, VALID, BN, ReLU, global average pool,
              dense) with rank-4 LRLC layers on offline Fashion-MNIST, 1,000 steps of batch 64. Not timed here:
              at width 64 an example costs about 16x what it costs in the sweep variant (width 16), so the
              run takes hours on 2 CPU cores.
  mnist       the same on tfds MNIST, 8% of train held out as in the paper (needs prepared tfds data).
  cifar10     the same on tfds CIFAR-10, 10% of train held out (needs prepared tfds data).
  celeb_a     the same on tfds CelebA: the face's central square resized to 32x32, label "Male" (dataset
              `celeb_a_male` in common/data/images.py; needs prepared tfds celeb_a), tested on its test split.
  sweep       the fast scale, base of configs/sweeps/lrlc_rank.py: width 16 instead of 64 and 300 steps of
              batch 32 (a sixth of an epoch), the whole rank sweep in about 40 min on 2 CPU cores.
  reproduce   the rank table trained to a plateau: width 8, 600 steps of batch 128, test accuracy every 50
              steps (configs/sweeps/lrlc_reproduce.py, the default of `python -m papers.low_rank_local.reproduce`).
  smoke       a tiny width-8 network on sklearn digits for 30 steps: seconds; what the tests run.
Model fields: layer (model.py LAYERS: conv | lrlc | lc | wide_conv), rank (K of lrlc; also the LRLC that
wide_conv is matched to), widths, kernel_size, padding (VALID | SAME), combining (row_column | row | column |
full | input_dependent), normalisation (softmax | l2 | none), wide_conv_target (lrlc | lc).
"""

from ml_collections import ConfigDict

from common.registry import lookup
from configs import presets


def _model() -> ConfigDict:
    """The paper's small network with rank-4 LRLC layers."""
    return ConfigDict(
        {
            "layer": "lrlc",
            "rank": 4,
            "widths": (64, 64, 64),
            "kernel_size": 3,
            "padding": "VALID",
            "combining": "row_column",
            "normalisation": "softmax",
            "wide_conv_target": "lrlc",
        }
    )


def _default() -> ConfigDict:
    config = presets.fashion_mnist_cpu(1000, log_every=50, checkpoint_every=250)
    config.model = _model()
    return config


def _held_out(dataset: str, train_split: str):
    def make() -> ConfigDict:
        config = _default()
        config.dataset = presets.dataset_preset(dataset)
        config.dataset.batch_size = 64
        config.dataset.train_split = train_split
        return config

    return make


def _sweep() -> ConfigDict:
    config = _default()
    config.model.widths = (16, 16, 16)
    config.dataset.batch_size = 32
    config.optimizer.warmup_steps = 30
    config.train.update(num_steps=300, log_every=50, checkpoint_every=300)
    return config


def _reproduce() -> ConfigDict:
    """The rank table trained to a plateau: the paper's network at width 8, 600 steps of batch 128 (1.28 epochs;
    cosine decay to 0), test accuracy every 50 steps (2,048 test images; the final one all 10,000). Measured on
    one idle core, a train step of batch 128 (forward, backward, update) took 0.06 s (conv, LRLC K = 1), 0.16 s
    (LRLC K = 4, LC, wide conv) and 0.57 s (LRLC K = 16): 1.6 s for one step of each of the 8 layers, so the
    24 runs of configs/sweeps/lrlc_reproduce.py come to about 40 min on 2 CPU cores (two 1-core trials at a
    time on Ray) with start-up and evaluation."""
    config = presets.fashion_mnist_reproduce(600, eval_every=50)
    config.model = _model()
    config.model.widths = (8, 8, 8)
    return config


def _smoke() -> ConfigDict:
    config = presets.digits_smoke(30, checkpoint_every=15)
    config.model = _model()
    config.model.update(widths=(8, 8, 8), rank=2)
    return config


VARIANTS = {
    "default": _default,
    "mnist": _held_out("mnist", "train[:92%]"),
    "cifar10": _held_out("cifar10", "train[:90%]"),
    "celeb_a": _held_out("celeb_a_male", "train"),
    "sweep": _sweep,
    "reproduce": _reproduce,
    "smoke": _smoke,
}


def get_config(variant: str = "default") -> ConfigDict:
    return lookup(VARIANTS, variant, "low_rank_local config variant")()
