"""Training for the Swish benchmark: plain image classification with the activation as the variable."""

from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.train import classification
from papers.swish import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    return classification.train_and_evaluate(config, workdir, model.build_model)


def build_for_dry_run(config: ConfigDict):
    input_shape, num_classes = images.dataset_shapes(config.dataset.name, config.dataset.get("image_size"))
    return model.build_model(config, input_shape, num_classes, nnx.Rngs(config.seed)), input_shape
