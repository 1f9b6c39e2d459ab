"""The paper's networks: the common bottleneck ResNet with halo attention as its spatial layer.

HaloNet H0-H7 (the paper's appendix table): 7x7/2 conv stem with a 3x3/2 max pool, four stages of
{1x1, c; attention(b, h), c * rv; 1x1, c * rb} x (3, 3, l3, 3) with c = 64, 128, 256, 512 and (4, 8, 8, 8)
heads, an optional final 1x1 conv of df channels, global average pool, linear head. HaloNet-50 is ResNet-50's
layout with every 3x3 conv replaced by b = 8, h = 3 attention of 16 channels per head. In the attention, q and
k are c wide and v is c * rv wide (rv widens the values only; with q and k also c * rv the H5-H7 counts come
out 23-24% above the paper's, with q and k at c they match within 1%).
"""

from typing import Any

from flax import nnx
from ml_collections import ConfigDict

from common.nn import resnet
from common.nn.halo_attention import halo_attention_layer
from common.nn.local_attention import local_attention_layer
from common.registry import lookup


def _h(block_size: int, halo_size: int, rv: float, rb: float, l3: int, df: int | None = None) -> dict[str, Any]:
    """One row of the paper's table: b, h, rv, rb, l3 and df (None: no final 1x1 conv)."""
    return dict(
        stem="imagenet",
        stage_sizes=(3, 3, l3, 3),
        width=64,
        block_size=block_size,
        halo_size=halo_size,
        value_ratio=rv,
        output_ratio=rb,
        final_features=df,
        num_heads=(4, 8, 8, 8),
        head_features=None,
    )


# config.model.name -> the architecture; every field can be overridden from config.model (None: the table's).
HALONETS: dict[str, dict[str, Any]] = {
    "halonet_h0": _h(8, 3, 1.0, 0.5, 7),
    "halonet_h1": _h(8, 3, 1.0, 1.0, 10),
    "halonet_h2": _h(8, 3, 1.0, 1.25, 11),
    "halonet_h3": _h(10, 3, 1.0, 1.5, 12, 1024),
    "halonet_h4": _h(12, 2, 1.0, 3.0, 12, 1280),
    "halonet_h5": _h(14, 2, 2.5, 2.0, 23, 1536),
    "halonet_h6": _h(8, 4, 3.0, 2.75, 24, 1536),
    "halonet_h7": _h(10, 3, 4.0, 3.5, 26, 2048),
    # ResNet-50's stages and 4x bottleneck expansion (output_ratio None), 16 channels per head.
    "halonet50": dict(
        _h(8, 3, 1.0, 1.0, 6), stage_sizes=(3, 4, 6, 3), output_ratio=None, num_heads=None, head_features=16
    ),
    # CPU scale (28x28 Fashion-MNIST): the CIFAR 3x3 stem, three stages of one 4x bottleneck at 28, 14, 7 px.
    "halonet_small": dict(
        _h(4, 2, 1.0, 1.0, 1),
        stem="cifar",
        stage_sizes=(1, 1, 1),
        width=16,
        output_ratio=None,
        num_heads=(2, 4, 4),
    ),
    # Smoke runs and tests (8x8 digits): width 8, no expansion, 2 heads.
    "halonet_tiny": dict(_h(2, 1, 1.0, 1.0, 1), stem="cifar", stage_sizes=(1, 1, 1), width=8, num_heads=(2, 2, 2)),
}

ARCHITECTURE_FIELDS = tuple(HALONETS["halonet_h0"])


def _halo(arch: dict[str, Any], stage: int, impl: str) -> resnet.SpatialLayerFactory:
    heads = arch["num_heads"]
    return halo_attention_layer(
        arch["block_size"],
        arch["halo_size"],
        None if heads is None else heads[stage],
        head_features=arch["head_features"],
        qk_features="in",  # q and k are c wide; rv widens the values only
        impl=impl,
    )


def _sasa(arch: dict[str, Any], stage: int, impl: str) -> resnet.SpatialLayerFactory:
    """Stand-alone self-attention with the centred k x k window, k = 2h + 1, so each query reaches at least as far
    as the halo does at its block's edge; the same heads (the paper's HaloNet-vs-SASA comparison)."""
    if arch["num_heads"] is None:
        raise ValueError("spatial_layer='sasa' needs num_heads per stage (head_features is halo-only)")
    return local_attention_layer(2 * arch["halo_size"] + 1, arch["num_heads"][stage])


def _conv3x3(arch: dict[str, Any], stage: int, impl: str) -> resnet.SpatialLayerFactory:
    return resnet.conv3x3


# config.model.spatial_layer -> the layer of the attention stages (conv3x3: the convolutional baseline).
SPATIAL_LAYERS = {"halo": _halo, "sasa": _sasa, "conv3x3": _conv3x3}


def architecture(model_config: ConfigDict) -> dict[str, Any]:
    """The named HALONETS row with config.model's non-None architecture fields laid over it."""
    arch = dict(lookup(HALONETS, model_config.name, "halonet"))
    for key in ARCHITECTURE_FIELDS:
        value = model_config.get(key)
        if value is not None:
            arch[key] = tuple(value) if isinstance(value, list | tuple) else value
    num_stages = len(arch["stage_sizes"])
    if isinstance(arch["num_heads"], int):
        arch["num_heads"] = (arch["num_heads"],) * num_stages
    if arch["num_heads"] is not None and len(arch["num_heads"]) != num_stages:
        raise ValueError(f"num_heads={arch['num_heads']} needs one entry per stage ({num_stages})")
    return arch


def stage_spatial_layers(model_config: ConfigDict, arch: dict[str, Any]) -> list[resnet.SpatialLayerFactory]:
    """One factory per stage: `spatial_layer` in the stages `attention_stages` names, the 3x3 conv elsewhere."""
    attention = lookup(SPATIAL_LAYERS, model_config.spatial_layer, "spatial layer")
    impl = model_config.get("impl", "auto")
    return resnet.stage_spatial_layers(
        lambda stage: attention(arch, stage, impl), model_config.get("attention_stages"), len(arch["stage_sizes"])
    )


def build_model(
    config: ConfigDict, input_shape: tuple[int, int, int], num_classes: int, rngs: nnx.Rngs
) -> resnet.ResNet:
    model_config = config.model
    arch = architecture(model_config)
    optional = {key: value for key in ("bn_momentum", "activation") if (value := model_config.get(key)) is not None}
    return resnet.ResNet(
        stage_sizes=arch["stage_sizes"],
        block="bottleneck",
        num_classes=num_classes,
        in_features=input_shape[-1],
        width=arch["width"],
        stem=arch["stem"],
        spatial_layer=stage_spatial_layers(model_config, arch),
        spatial_ratio=arch["value_ratio"],
        output_ratio=arch["output_ratio"],
        final_features=arch["final_features"],
        rngs=rngs,
        **optional,
    )
