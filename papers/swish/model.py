"""The Swish benchmark's model: the common ResNet with the activation named in the config."""

from flax import nnx
from ml_collections import ConfigDict

from common.nn import resnet


def build_model(
    config: ConfigDict, input_shape: tuple[int, int, int], num_classes: int, rngs: nnx.Rngs
) -> resnet.ResNet:
    return resnet.make_resnet(
        config.model.name,
        num_classes=num_classes,
        in_features=input_shape[-1],
        activation=config.model.activation,
        rngs=rngs,
    )
