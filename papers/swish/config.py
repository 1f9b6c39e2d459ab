"""Configs for the Swish activation benchmark ("Searching for Activation Functions", Ramachandran et al. 2017).

Run:  python -m papers.swish.main --config=papers/swish/config.py:<variant> [--config.model.activation=gelu]
Variants:
  default     ResNet-20, swish, offline Fashion-MNIST, 800 steps of batch 64 (`make run`; its measured time
              and accuracy are in papers/swish/README.md).
  digits      ResNet-20 on sklearn's digits: the fallback of `make run` where Debian's Fashion-MNIST is absent.
  smoke       a tiny ResNet on sklearn digits for 30 steps: seconds; what the tests run.
  reproduce   the setting of papers/swish/README.md's main table: resnet_tiny on Fashion-MNIST trained to a
              plateau (500 steps of batch 128), swept over activations and seeds by
              `python -m papers.swish.reproduce` (configs/sweeps/swish_reproduce.py).
  benchmark   the fast scale: ResNet-20, 400 steps of batch 64 (configs/sweeps/swish_activations.py).
  cifar10_resnet164 / cifar100_resnet164   the paper's ResNet-164 CIFAR setting (needs prepared tfds CIFAR data
              and an accelerator: 64k steps).
  search_exhaustive   every one-core-unit function over a subset of the primitives (papers/swish/search.py):
              resnet_tiny children, 150 steps each, rewarded by accuracy on 2,000 held-out training images;
              19 candidates; on 2 shared CPU cores a child took 46 s and the 9 re-training runs 7 min.
  search_controller   a PPO-trained LSTM controller over two core units and all 35 primitives, same children.
  search_controller_cifar10   the same with CIFAR-10 children (needs prepared tfds cifar10).
  search_smoke        a complete controller search on digits in CI time (what tests/papers/swish run).
  search_retrain[_cifar10] / search_smoke_retrain   the best found vs ReLU and Swish over seeds, on the test split.
  Search run:  python -m papers.swish.search --config=papers/swish/config.py:search_exhaustive --workdir=DIR
Activations: common/nn/activations.py ACTIVATIONS (relu, lrelu, prelu, softplus, elu, selu, gelu, swish, swish1).
"""

from ml_collections import ConfigDict

from common.registry import lookup
from configs import presets


def _default() -> ConfigDict:
    config = presets.fashion_mnist_cpu(800)
    config.model = ConfigDict({"name": "resnet20", "activation": "swish"})
    return config


def _smoke() -> ConfigDict:
    config = presets.digits_smoke(30, checkpoint_every=10)
    config.model = ConfigDict({"name": "resnet_tiny", "activation": "swish"})
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


def _reproduce() -> ConfigDict:
    """The table trained to a plateau: resnet_tiny (width 8, one basic block per stage) for 500 steps of batch 128
    (1.07 epochs; cosine decay to 0), test accuracy every 50 steps (2,048 test images; the final one all 10,000).
    Measured on one core of the 2 (the other running a second trial): 0.42 s a step and 16 s a full test
    evaluation, so about 300 s a run and 27 runs in about 70 min (configs/sweeps/swish_reproduce.py)."""
    config = presets.fashion_mnist_reproduce(500, eval_every=50)
    config.model = ConfigDict({"name": "resnet_tiny", "activation": "swish"})
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


# The activation search (python -m papers.swish.search). Children train on a validation split held out from the
# training set; the test split is only touched by the re-training of the best function against ReLU and Swish.
SEARCH_VALIDATION_EXAMPLES = 2000


def _search_child(config: ConfigDict, validation_examples: int = SEARCH_VALIDATION_EXAMPLES) -> ConfigDict:
    """The child setting: resnet_tiny, 150 steps of batch 64, validation = the last examples of the train split."""
    config.model.name = "resnet_tiny"
    config.dataset.train_split = f"train[:-{validation_examples}]"
    config.dataset.eval_split = f"train[-{validation_examples}:]"
    config.optimizer.warmup_steps = 20
    config.train.update(num_steps=150, log_every=50, checkpoint_every=150)
    return config


def _search_exhaustive() -> ConfigDict:
    config = _search_child(_default())
    config.search = ConfigDict(
        {
            "method": "exhaustive",
            "binaries": ["mul", "max", "sigmoid_mul"],
            "unaries": ["x", "beta_mul", "sigmoid"],
            "num_units": 1,
            # the controller's fields, unused by exhaustive search but kept so every search config has one shape
            "iterations": 0,
            "candidates_per_iteration": 0,
            "controller": {"hidden": 64, "learning_rate": 5e-3, "clip_epsilon": 0.2, "entropy_weight": 1e-3},
            "ppo_epochs": 4,
            "baseline_decay": 0.9,
            "group_size": 1,  # children per program; side by side was slower on 2 CPU cores (papers/swish/README.md)
            "top_k": 8,  # functions plotted
            "retrain_config": "papers/swish/config.py:search_retrain",
            "retrain_seeds": [0, 1, 2],
            "retrain_baselines": ["relu", "swish"],
        }
    )
    return config


def _search_controller() -> ConfigDict:
    config = _search_exhaustive()
    config.search.update(
        method="controller",
        binaries=["add", "mul", "sub", "div", "max", "min", "sigmoid_mul", "gauss_diff", "laplace_diff", "mix"],
        unaries=[
            "x",
            "neg",
            "abs",
            "square",
            "cube",
            "sqrt",
            "beta_mul",
            "beta_add",
            "log_abs",
            "exp",
            "sin",
            "cos",
            "sinh",
            "cosh",
            "tanh",
            "asinh",
            "atan",
            "sinc",
            "max0",
            "min0",
            "sigmoid",
            "softplus",
            "gauss",
            "erf",
            "beta",
        ],  # fmt: skip
        num_units=2,
        iterations=10,
        candidates_per_iteration=8,
    )
    return config


def _search_controller_cifar10() -> ConfigDict:
    """The same controller search with CIFAR-10 children (needs tfds cifar10 prepared)."""
    config = _search_controller()
    config.dataset = presets.dataset_preset("cifar10")
    _search_child(config, validation_examples=5000)
    config.search.retrain_config = "papers/swish/config.py:search_retrain_cifar10"
    return config


def _search_retrain() -> ConfigDict:
    """Re-training the best found against ReLU and Swish: the search's child setting on the full train split,
    scored on the test split."""
    config = _search_child(_default())
    config.dataset = presets.dataset_preset("fashion_mnist_local")
    config.dataset.batch_size = 64
    return config


def _search_retrain_cifar10() -> ConfigDict:
    config = _search_retrain()
    config.dataset = presets.dataset_preset("cifar10")
    config.dataset.batch_size = 64
    return config


def _search_smoke() -> ConfigDict:
    """A complete controller search in CI time: digits, 2 rounds of 2 one-unit candidates, 10 steps each."""
    config = _search_controller()
    config.dataset = presets.dataset_preset("digits_local")
    _search_child(config, validation_examples=300)
    config.train.update(num_steps=10, log_every=5, checkpoint_every=10)
    config.optimizer.warmup_steps = 2
    config.search.update(
        binaries=["add", "mul", "sigmoid_mul"],
        unaries=["x", "beta_mul", "sigmoid", "tanh"],
        num_units=1,
        iterations=2,
        candidates_per_iteration=2,
        group_size=2,
        top_k=3,
        retrain_config="papers/swish/config.py:search_smoke_retrain",
        retrain_seeds=[0],
        retrain_baselines=["relu"],
    )
    return config


def _search_smoke_retrain() -> ConfigDict:
    config = _smoke()
    config.train.update(num_steps=10, log_every=5, checkpoint_every=10)
    return config


VARIANTS = {
    "default": _default,
    "smoke": _smoke,
    "digits": _digits,
    "benchmark": _benchmark,
    "reproduce": _reproduce,
    "cifar10_resnet164": _cifar_resnet164("cifar10"),
    "cifar100_resnet164": _cifar_resnet164("cifar100"),
    "search_exhaustive": _search_exhaustive,
    "search_controller": _search_controller,
    "search_controller_cifar10": _search_controller_cifar10,
    "search_smoke": _search_smoke,
    "search_retrain": _search_retrain,
    "search_retrain_cifar10": _search_retrain_cifar10,
    "search_smoke_retrain": _search_smoke_retrain,
}


def get_config(variant: str = "default") -> ConfigDict:
    return lookup(VARIANTS, variant, "swish config variant")()
