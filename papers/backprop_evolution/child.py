"""Child training for the equation search: each candidate becomes the search config's network under that rule.

The children train through common/search/child.py, `config.search.group_size` per program, and score top-1
accuracy on the validation split held out from the training set (config.dataset.eval_split), never the test split.
"""

from collections.abc import Sequence

from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.search import child
from common.search.child import ChildResult
from common.train import optim
from papers.backprop_evolution import model, search_space

__all__ = ["ChildResult", "train_children"]


def child_config(config: ConfigDict, spec: str) -> ConfigDict:
    """The search config with `model.rule` set to `spec` (a candidate's spec or "backprop")."""
    config = ConfigDict(config.to_dict())
    config.model.rule = spec
    return config


def train_children(
    candidates: Sequence[search_space.Candidate], config: ConfigDict, dataset: images.ImageDataset
) -> list[ChildResult]:
    """Trains one child per candidate for config.train.num_steps steps on the same batches; validation accuracies."""
    models = [
        model.build_model(
            child_config(config, search_space.to_spec(c)), dataset.input_shape, dataset.num_classes,
            nnx.Rngs(int(config.seed)),
        )
        for c in candidates
    ]  # fmt: skip
    num_steps = int(config.train.num_steps)
    return child.train_children(models, optim.make_optimizer(config.optimizer, num_steps), dataset, num_steps)
