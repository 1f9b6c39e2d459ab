"""The Swish benchmark's model: the common ResNet with the activation named in the config.

`config.model.activation` is a name in common/nn/activations.py or a searched candidate's spec
(`search:...`, papers/swish/search_space.py).
"""

from flax import nnx
from ml_collections import ConfigDict

from common.nn import resnet
from papers.swish import search_space


def build_model(
    config: ConfigDict, input_shape: tuple[int, int, int], num_classes: int, rngs: nnx.Rngs
) -> resnet.ResNet:
    return resnet.make_resnet(
        config.model.name,
        num_classes=num_classes,
        in_features=input_shape[-1],
        activation=search_space.resolve_activation(config.model.activation),
        rngs=rngs,
    )
