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
        block_size=model_config.get("block_size") or None,  # 0 / None: the default rule
        implementation=model_config.implementation,
        positional=model_config.get("positional", "relative"),
        max_positions=model_config.get("max_positions", 64),
    )


# config.model.spatial_layer -> the factory of the layer that replaces the 3x3 conv in the stages `attention_stages`
# names (baseline: the conv itself).
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
    attention = lookup(SPATIAL_LAYERS, model_config.spatial_layer, "spatial layer")(model_config)
    num_stages = len({**lookup(resnet.RESNETS, model_config.name, "resnet"), **overrides}["stage_sizes"])
    spatial_layers = resnet.stage_spatial_layers(
        lambda stage: attention, model_config.get("attention_stages"), num_stages
    )
    return resnet.make_resnet(
        model_config.name,
        num_classes=num_classes,
        in_features=input_shape[-1],
        spatial_layer=spatial_layers,
        rngs=rngs,
        **overrides,
    )
