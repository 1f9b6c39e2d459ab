"""Child training for the activation search: each candidate becomes the search config's ResNet with that activation.

The children train side by side through common/search/child.py, `config.search.group_size` per program; the reward
is top-1 accuracy on the validation split held out from the training set (config.dataset.eval_split, e.g.
`train[-5000:]`), never the test split.
"""

from collections.abc import Sequence

from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.search import child
from common.search.child import ChildResult
from common.train import optim
from papers.swish import model as swish_model
from papers.swish import search_space

__all__ = ["ChildResult", "train_children"]


def _child_config(config: ConfigDict, candidate: search_space.Candidate) -> ConfigDict:
    child_config = ConfigDict(config.to_dict())
    child_config.model.activation = search_space.to_spec(candidate)
    return child_config


def train_children(
    candidates: Sequence[search_space.Candidate], config: ConfigDict, dataset: images.ImageDataset
) -> list[ChildResult]:
    """Trains one child per candidate for config.train.num_steps steps on the same batches; validation accuracies.

    config: a swish search config (model, optimizer, train.num_steps, seed); dataset: its train/validation data.
    """
    models = [
        swish_model.build_model(
            _child_config(config, c), dataset.input_shape, dataset.num_classes, nnx.Rngs(int(config.seed))
        )
        for c in candidates
    ]
    num_steps = int(config.train.num_steps)
    return child.train_children(models, optim.make_optimizer(config.optimizer, num_steps), dataset, num_steps)
