"""Child training for the equation search: each candidate becomes the search config's network under that rule.

The children train through common/search/child.py, `config.search.group_size` per program, and score top-1
accuracy on the validation split held out from the training set (config.dataset.eval_split), never the test split.
With `config.search.vmap_children` a group is one network vmapped over its equations (every rule layer switches
between the group's equations by a per-child index) instead of one copy of the network per equation.
"""

from collections.abc import Sequence

from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.search import backward, child
from common.search.child import ChildResult
from common.train import optim
from papers.backprop_evolution import model, search_space

__all__ = ["ChildResult", "train_children"]


def child_config(config: ConfigDict, spec: str) -> ConfigDict:
    """The search config with `model.rule` set to `spec` (a candidate's spec or "backprop")."""
    config = ConfigDict(config.to_dict())
    config.model.rule = spec
    return config


def _vmap_children(config: ConfigDict) -> bool:
    search = config.get("search")
    return bool(search.get("vmap_children", False)) if search is not None else False


def train_children(
    candidates: Sequence[search_space.Candidate],
    config: ConfigDict,
    dataset: images.ImageDataset,
    vmapped: bool | None = None,
) -> list[ChildResult]:
    """Trains one child per candidate for config.train.num_steps steps on the same batches; validation accuracies.

    vmapped: one network vmapped over the candidates (default: config.search.vmap_children, else False); every
    child starts from the same initial weights (config.seed) either way."""
    num_steps = int(config.train.num_steps)
    tx = optim.make_optimizer(config.optimizer, num_steps)
    specs = [search_space.to_spec(c) for c in candidates]
    if _vmap_children(config) if vmapped is None else vmapped:
        models = [
            backward.select_rule(
                model.build_model(
                    config, dataset.input_shape, dataset.num_classes, nnx.Rngs(int(config.seed)), specs=specs
                ),
                index,
            )
            for index in range(len(specs))
        ]
        return child.train_children_vmapped(models, tx, dataset, num_steps)
    models = [
        model.build_model(
            child_config(config, spec), dataset.input_shape, dataset.num_classes, nnx.Rngs(int(config.seed))
        )
        for spec in specs
    ]
    return child.train_children(models, tx, dataset, num_steps)
