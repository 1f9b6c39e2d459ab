"""The paper's networks: the common ResNet with local self-attention as its spatial layer and/or its stem."""

from flax import nnx
from ml_collections import ConfigDict

from common.nn import resnet
from common.nn.local_attention import local_attention_layer
from common.registry import lookup


def _conv3x3(model_config: ConfigDict) -> resnet.SpatialLayerFactory:
    return resnet.conv3x3


def _local_attention(model_config: ConfigDict) -> resnet.SpatialLayerFactory:
    return local_attention_layer(
        model_config.kernel_size,
        model_config.num_heads,
        block_size=model_config.block_size,
        implementation=model_config.implementation,
    )


# config.model.spatial_layer -> the factory of the layer that replaces every 3x3 conv (baseline: the conv itself).
SPATIAL_LAYERS = {"conv3x3": _conv3x3, "attention": _local_attention}


def build_model(
    config: ConfigDict, input_shape: tuple[int, int, int], num_classes: int, rngs: nnx.Rngs
) -> resnet.ResNet:
    model_config = config.model
    overrides = {
        key: tuple(value) if isinstance(value, list | tuple) else value
        for key in ("stem", "width", "stage_sizes", "bn_momentum")
        if (value := model_config.get(key)) is not None
    }
    return resnet.make_resnet(
        model_config.name,
        num_classes=num_classes,
        in_features=input_shape[-1],
        spatial_layer=lookup(SPATIAL_LAYERS, model_config.spatial_layer, "spatial layer")(model_config),
        rngs=rngs,
        **overrides,
    )
