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


# config.model.spatial_layer -> the factory of the layer that replaces every 3x3 conv (baseline: the conv itself).
SPATIAL_LAYERS = {"conv3x3": _conv3x3, "attention": _local_attention}


def _stage_of(out_features: int, width: int, num_stages: int) -> int:
    """Stage s has spatial layers of width * 2**s output channels (common/nn/resnet.py), in both block kinds."""
    for stage in range(num_stages):
        if out_features == width * 2**stage:
            return stage
    raise ValueError(f"a spatial layer of {out_features} channels belongs to no stage of width {width}")


def placed_spatial_layer(
    attention: resnet.SpatialLayerFactory, stages: tuple[int, ...], width: int, num_stages: int
) -> resnet.SpatialLayerFactory:
    """A factory building `attention` in the given stages and the 3x3 conv in the others."""

    def make(in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> nnx.Module:
        in_attention = _stage_of(out_features, width, num_stages) in stages
        factory = attention if in_attention else resnet.conv3x3
        return factory(in_features, out_features, stride=stride, rngs=rngs)

    return make


def build_model(
    config: ConfigDict, input_shape: tuple[int, int, int], num_classes: int, rngs: nnx.Rngs
) -> resnet.ResNet:
    model_config = config.model
    overrides = {
        key: tuple(value) if isinstance(value, list | tuple) else value
        for key in ("stem", "width", "stage_sizes", "bn_momentum")
        if (value := model_config.get(key)) is not None
    }
    spatial_layer = lookup(SPATIAL_LAYERS, model_config.spatial_layer, "spatial layer")(model_config)
    attention_stages = model_config.get("attention_stages")
    if attention_stages is not None and model_config.spatial_layer == "attention":
        architecture = {**lookup(resnet.RESNETS, model_config.name, "resnet"), **overrides}
        num_stages = len(architecture["stage_sizes"])
        stages = resnet.stage_indices(attention_stages, num_stages)
        if stages != tuple(range(num_stages)):
            spatial_layer = placed_spatial_layer(spatial_layer, stages, architecture["width"], num_stages)
    return resnet.make_resnet(
        model_config.name,
        num_classes=num_classes,
        in_features=input_shape[-1],
        spatial_layer=spatial_layer,
        rngs=rngs,
        **overrides,
    )
