"""Training for low-rank local connectivity: image classification with the paper's small network."""

import functools

from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.train import classification
from papers.low_rank_local import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    return classification.train_and_evaluate(config, workdir, model.build_model)


def build_for_dry_run(config: ConfigDict):
    """The model built abstractly (the dense LC network holds ~40M weights) for the parameter and FLOP counts."""
    input_shape, num_classes = images.dataset_shapes(config.dataset.name, config.dataset.get("image_size"))
    build = functools.partial(model.build_model, config, input_shape, num_classes)
    return nnx.eval_shape(lambda: build(nnx.Rngs(config.seed))), input_shape
