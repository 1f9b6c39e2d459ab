"""Configs for backprop evolution ("Backprop Evolution", Alber et al. 2018): networks trained by searched
backward-pass equations, and the regularised-evolution search that finds them.

Run:  python -m papers.backprop_evolution.main --config=papers/backprop_evolution/config.py:<variant>
Variants:
  default   a 784-128-128-10 ReLU MLP on offline Fashion-MNIST trained by standard backprop (`model.rule`), 300
            steps of batch 64 (the short budget), on train[:-5000]; test accuracy, plus validation accuracy on
            train[-5000:]. Seconds on 2 CPU cores (papers/backprop_evolution/README.md).
  long      the same for 1500 steps (1.7 epochs), test accuracy every 150 steps.
  converge  the same for 8000 steps (9.3 epochs), test accuracy every 500 steps: the learning curves that show
            where accuracy levels off (minutes per run).
  smoke     a 64-unit MLP on sklearn digits for 30 steps: seconds; what the tests run.
  convnet   the default with two 3x3 stride-2 rule convolutions instead of the MLP.
  cifar10_resnet   a widened ResNet-20 with the rule in its 3x3 layers on CIFAR-10 (needs prepared tfds cifar10;
            configured, not run here).
  search    regularised evolution over two-unit equations (papers/backprop_evolution/search.py): default-setting
            children on train[:-5000], rewarded by accuracy on train[-5000:]; tens of children, minutes.
  search_smoke   a complete search on digits in CI time.
  Search run:  python -m papers.backprop_evolution.search --config=papers/backprop_evolution/config.py:search
               --workdir=DIR [--readme=papers/backprop_evolution/README.md]
"""

from ml_collections import ConfigDict

from common.registry import lookup
from configs import presets

VALIDATION_EXAMPLES = 5000
SHORT_STEPS = 300
LONG_STEPS = 1500
CONVERGE_STEPS = 8000


def _default() -> ConfigDict:
    config = presets.fashion_mnist_cpu(SHORT_STEPS, log_every=50, checkpoint_every=SHORT_STEPS)
    config.dataset.train_split = f"train[:-{VALIDATION_EXAMPLES}]"
    config.dataset.validation_split = f"train[-{VALIDATION_EXAMPLES}:]"
    config.optimizer.update(name="momentum", learning_rate=0.05, warmup_steps=0, weight_decay=0.0)
    config.model = ConfigDict(
        {
            "name": "mlp",
            "hidden": (128, 128),
            "activation": "relu",
            "rule": "backprop",  # or a searched equation's spec, rule:...
            "apply_to": "both",  # common/search/backward.py APPLY_TO: both, weights, inputs
            "resnet": "resnet20",  # for name=resnet
            "width": 16,
        }
    )
    return config


def _long() -> ConfigDict:
    config = _default()
    config.train.update(num_steps=LONG_STEPS, log_every=150, eval_every=150, checkpoint_every=LONG_STEPS)
    return config


def _converge() -> ConfigDict:
    config = _default()
    config.train.update(num_steps=CONVERGE_STEPS, log_every=500, eval_every=500, checkpoint_every=2000)
    return config


def _smoke() -> ConfigDict:
    config = _default()
    config.dataset = presets.dataset_preset("digits_local")
    config.dataset.validation_split = "train[-300:]"
    config.dataset.train_split = "train[:-300]"
    config.model.hidden = (64,)
    config.train.update(num_steps=30, log_every=10, checkpoint_every=10)
    return config


def _convnet() -> ConfigDict:
    config = _default()
    config.model.update(name="convnet", hidden=(16, 32))
    return config


def _cifar10_resnet() -> ConfigDict:
    config = _default()
    config.dataset = presets.dataset_preset("cifar10")
    config.dataset.train_split = f"train[:-{VALIDATION_EXAMPLES}]"
    config.dataset.validation_split = f"train[-{VALIDATION_EXAMPLES}:]"
    config.model.update(name="resnet", resnet="resnet20", width=64)  # WRN-20-4-like
    config.optimizer.update(name="nesterov", learning_rate=0.1, warmup_steps=500, weight_decay=5e-4)
    config.train.update(num_steps=20_000, log_every=100, eval_every=2_000, checkpoint_every=2_000)
    return config


def _search() -> ConfigDict:
    """Children: the default setting scored on the held-out validation split (never the test split)."""
    config = _default()
    config.dataset.eval_split = config.dataset.validation_split
    config.dataset.validation_split = ""
    config.search = ConfigDict(
        {
            "binaries": ["add", "sub", "mul", "div", "max", "min", "left"],
            "unaries": [
                "x",
                "neg",
                "abs",
                "square",
                "sign",
                "signed_sqrt",
                "tanh",
                "sigmoid",
                "max0",
                "min0",
                "clip",
                "batch_norm",
                "example_norm",
                "tensor_norm",
            ],  # fmt: skip
            "num_units": 2,
            "initial_population": "backprop_mutants",  # or random (search.py INITIAL_POPULATIONS)
            "population_size": 12,
            "sample_size": 4,
            "num_candidates": 60,
            "group_size": 1,  # children per program (benchmarks/backprop_evolution.py)
            "vmap_children": False,  # True: a group is one network vmapped over its equations (child.py)
            "top_k": 10,  # rows of the README's ranking
        }
    )
    return config


def _search_smoke() -> ConfigDict:
    config = _search()
    smoke = _smoke()
    config.dataset = smoke.dataset
    config.dataset.eval_split = smoke.dataset.validation_split
    config.dataset.validation_split = ""
    config.model.hidden = smoke.model.hidden
    config.train.update(num_steps=10, log_every=5, checkpoint_every=10)
    config.search.update(population_size=3, sample_size=2, num_candidates=5, top_k=3)
    return config


VARIANTS = {
    "default": _default,
    "long": _long,
    "converge": _converge,
    "smoke": _smoke,
    "convnet": _convnet,
    "cifar10_resnet": _cifar10_resnet,
    "search": _search,
    "search_smoke": _search_smoke,
}


def get_config(variant: str = "default") -> ConfigDict:
    return lookup(VARIANTS, variant, "backprop_evolution config variant")()
