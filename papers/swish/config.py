"""Configs for the Swish activation benchmark ("Searching for Activation Functions", Ramachandran et al. 2017).

Run:  python -m papers.swish.main --config=papers/swish/config.py:<variant> [--config.model.activation=gelu]
Variants:
  default     ResNet-20, swish, offline Fashion-MNIST, 800 steps of batch 64 (`make run`; its measured time
              and accuracy are in papers/swish/README.md).
  digits      ResNet-20 on sklearn's digits: the fallback of `make run` where Debian's Fashion-MNIST is absent.
  smoke       a tiny ResNet on sklearn digits for 30 steps: seconds; what the tests run.
  benchmark   the setting of papers/swish/README.md's table: ResNet-20 on Fashion-MNIST, 400 steps per run,
              swept over activations and seeds by `python -m papers.swish.benchmark`.
  cifar10_resnet164 / cifar100_resnet164   the paper's ResNet-164 CIFAR setting (needs prepared tfds CIFAR data
              and an accelerator: 64k steps).
Activations: common/nn/activations.py ACTIVATIONS (relu, lrelu, prelu, softplus, elu, selu, gelu, swish, swish1).
"""

from ml_collections import ConfigDict

from common.registry import lookup
from configs import presets


def _default() -> ConfigDict:
    config = presets.image_classification("fashion_mnist_local")
    config.model = ConfigDict({"name": "resnet20", "activation": "swish"})
    config.dataset.batch_size = 64
    config.optimizer.update(learning_rate=0.05, warmup_steps=50)
    config.train.update(num_steps=800, log_every=25, checkpoint_every=200)
    return config


def _smoke() -> ConfigDict:
    config = _default()
    config.model.name = "resnet_tiny"
    config.dataset = presets.dataset_preset("digits_local")
    config.optimizer.warmup_steps = 5
    config.optimizer.learning_rate = 0.05
    config.train.update(num_steps=30, log_every=10, checkpoint_every=10)
    return config


def _digits() -> ConfigDict:
    config = _default()
    config.dataset = presets.dataset_preset("digits_local")
    config.optimizer.warmup_steps = 20
    config.train.update(num_steps=300, log_every=25, checkpoint_every=150)
    return config


def _benchmark() -> ConfigDict:
    config = _default()
    config.train.update(num_steps=400, log_every=50, checkpoint_every=200)
    return config


def _cifar_resnet164(dataset: str):
    def make() -> ConfigDict:
        config = _default()
        config.model.name = "resnet164"
        config.dataset = presets.dataset_preset(dataset)
        config.dataset.batch_size = 128
        config.optimizer.update(learning_rate=0.1, schedule="steps", decay_boundaries=(0.5, 0.75), warmup_steps=0)
        config.train.update(num_steps=64_000, log_every=100, eval_every=2_000, checkpoint_every=2_000)
        return config

    return make


VARIANTS = {
    "default": _default,
    "smoke": _smoke,
    "digits": _digits,
    "benchmark": _benchmark,
    "cifar10_resnet164": _cifar_resnet164("cifar10"),
    "cifar100_resnet164": _cifar_resnet164("cifar100"),
}


def get_config(variant: str = "default") -> ConfigDict:
    return lookup(VARIANTS, variant, "swish config variant")()
