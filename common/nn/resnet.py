"""One ResNet family whose spatial layer and activation are parameters.

Later papers plug their layer into the same backbone: stand-alone local self-attention, halo attention and
low-rank locally connected layers replace `spatial_layer` (the 3x3 conv of every block); searched activations
replace `activation`. Everything else (blocks, stems, stage layout, BatchNorm, head) stays the same, so the
comparison a paper makes isolates the one thing it changes.

Layout (He et al. 2016, v1 with the stride on the 3x3 as in "ResNet v1.5"):
  cifar stem     3x3 conv -> BN -> act;                        3 stages of widths w, 2w, 4w
  imagenet stem  7x7/2 conv -> BN -> act -> 3x3/2 max pool;    4 stages of widths w, 2w, 4w, 8w
  basic block       spatial -> BN -> act -> spatial -> BN, + shortcut, act
  bottleneck block  1x1 -> BN -> act -> spatial(stride) -> BN -> act -> 1x1 (x4) -> BN, + shortcut, act
  head              global average pool -> linear
"""

import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Protocol

import jax
import jax.numpy as jnp
from flax import nnx

from common.nn.activations import make_activation
from common.registry import lookup


class SpatialLayerFactory(Protocol):
    """Builds the layer that mixes information across pixels: [N,H,W,Cin] -> [N,H/stride,W/stride,Cout]."""

    def __call__(self, in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> nnx.Module: ...


def conv3x3(in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> nnx.Module:
    """The default spatial layer: a 3x3 convolution, SAME padding, no bias (BatchNorm follows)."""
    return nnx.Conv(in_features, out_features, (3, 3), strides=stride, padding="SAME", use_bias=False, rngs=rngs)


def _conv1x1(in_features: int, out_features: int, *, stride: int = 1, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(in_features, out_features, (1, 1), strides=stride, use_bias=False, rngs=rngs)


@dataclasses.dataclass(frozen=True)
class BlockOptions:
    """What every block of one network shares."""

    spatial_layer: SpatialLayerFactory
    activation: str
    bn_momentum: float
    zero_init_residual: bool
    dtype: jnp.dtype


class _NormAct(nnx.Module):
    """BatchNorm followed (optionally) by the network's activation."""

    def __init__(self, features: int, options: BlockOptions, *, act: bool = True, zero_scale: bool = False,
                 rngs: nnx.Rngs):
        scale_init = nnx.initializers.zeros_init() if zero_scale else nnx.initializers.ones_init()
        self.norm = nnx.BatchNorm(features, momentum=options.bn_momentum, epsilon=1e-5, scale_init=scale_init,
                                  dtype=options.dtype, rngs=rngs)
        self.act = make_activation(options.activation, features, rngs=rngs) if act else None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.norm(x)
        return x if self.act is None else self.act(x)


class _Shortcut(nnx.Module):
    """Identity, or a strided 1x1 projection + BN where the shape changes."""

    def __init__(self, in_features: int, out_features: int, stride: int, options: BlockOptions, rngs: nnx.Rngs):
        self.project = None
        if stride != 1 or in_features != out_features:
            self.project = _conv1x1(in_features, out_features, stride=stride, rngs=rngs)
            self.norm = _NormAct(out_features, options, act=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x if self.project is None else self.norm(self.project(x))


class BasicBlock(nnx.Module):
    """Two spatial layers (the first carries the stride); CIFAR ResNet-20/56."""

    expansion = 1

    def __init__(self, in_features: int, features: int, stride: int, options: BlockOptions, rngs: nnx.Rngs):
        out_features = features * self.expansion
        self.spatial1 = options.spatial_layer(in_features, features, stride=stride, rngs=rngs)
        self.norm_act1 = _NormAct(features, options, rngs=rngs)
        self.spatial2 = options.spatial_layer(features, out_features, stride=1, rngs=rngs)
        self.norm2 = _NormAct(out_features, options, act=False, zero_scale=options.zero_init_residual, rngs=rngs)
        self.shortcut = _Shortcut(in_features, out_features, stride, options, rngs)
        self.act_out = make_activation(options.activation, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.norm2(self.spatial2(self.norm_act1(self.spatial1(x))))
        return self.act_out(y + self.shortcut(x))


class BottleneckBlock(nnx.Module):
    """1x1 reduce, spatial layer (carries the stride), 1x1 expand by 4; ResNet-26/38/50 and CIFAR ResNet-164."""

    expansion = 4

    def __init__(self, in_features: int, features: int, stride: int, options: BlockOptions, rngs: nnx.Rngs):
        out_features = features * self.expansion
        self.reduce = _conv1x1(in_features, features, rngs=rngs)
        self.norm_act1 = _NormAct(features, options, rngs=rngs)
        self.spatial = options.spatial_layer(features, features, stride=stride, rngs=rngs)
        self.norm_act2 = _NormAct(features, options, rngs=rngs)
        self.expand = _conv1x1(features, out_features, rngs=rngs)
        self.norm3 = _NormAct(out_features, options, act=False, zero_scale=options.zero_init_residual, rngs=rngs)
        self.shortcut = _Shortcut(in_features, out_features, stride, options, rngs)
        self.act_out = make_activation(options.activation, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.norm_act1(self.reduce(x))
        y = self.norm_act2(self.spatial(y))
        y = self.norm3(self.expand(y))
        return self.act_out(y + self.shortcut(x))


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class CifarStem(nnx.Module):
    """3x3 conv -> BN -> act at full resolution (small images)."""

    num_stages = 3

    def __init__(self, in_features: int, width: int, options: BlockOptions, rngs: nnx.Rngs):
        self.conv = nnx.Conv(in_features, width, (3, 3), padding="SAME", use_bias=False, rngs=rngs)
        self.norm_act = _NormAct(width, options, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm_act(self.conv(x))


class ImageNetStem(nnx.Module):
    """7x7/2 conv -> BN -> act -> 3x3/2 max pool: 4x downsampling before the first stage."""

    num_stages = 4

    def __init__(self, in_features: int, width: int, options: BlockOptions, rngs: nnx.Rngs):
        self.conv = nnx.Conv(in_features, width, (7, 7), strides=2, padding=((3, 3), (3, 3)), use_bias=False,
                             rngs=rngs)
        self.norm_act = _NormAct(width, options, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.norm_act(self.conv(x))
        return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


STEMS = {"cifar": CifarStem, "imagenet": ImageNetStem}


class ResNet(nnx.Module):
    """Stem, stages of residual blocks (stride 2 at the start of every stage but the first), pooled linear head."""

    def __init__(self, *, stage_sizes: Sequence[int], block: str, num_classes: int, in_features: int, width: int,
                 stem: str, spatial_layer: SpatialLayerFactory = conv3x3, activation: str = "relu",
                 bn_momentum: float = 0.9, zero_init_residual: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
        block_cls = lookup(BLOCKS, block, "resnet block")
        stem_cls = lookup(STEMS, stem, "resnet stem")
        if len(stage_sizes) != stem_cls.num_stages:
            raise ValueError(f"a {stem!r} stem takes {stem_cls.num_stages} stages, got stage_sizes={stage_sizes}")
        options = BlockOptions(spatial_layer, activation, bn_momentum, zero_init_residual, dtype)
        self.stem = stem_cls(in_features, width, options, rngs)
        blocks = []
        features = width
        for stage, num_blocks in enumerate(stage_sizes):
            stage_width = width * 2**stage
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block_cls(features, stage_width, stride, options, rngs))
                features = stage_width * block_cls.expansion
        self.blocks = blocks
        self.head = nnx.Linear(features, num_classes, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, C] images -> [N, num_classes] logits."""
        x = self.stem(x.astype(self.dtype))
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(axis=(1, 2)))


_cifar = partial(dict, stem="cifar", width=16)
_imagenet = partial(dict, stem="imagenet", block="bottleneck", width=64)

# name -> ResNet keyword arguments.
RESNETS: dict[str, dict] = {
    "resnet_tiny": _cifar(block="basic", stage_sizes=(1, 1, 1), width=8),  # tests and smoke runs
    "resnet20": _cifar(block="basic", stage_sizes=(3, 3, 3)),
    "resnet56": _cifar(block="basic", stage_sizes=(9, 9, 9)),
    "resnet164": _cifar(block="bottleneck", stage_sizes=(18, 18, 18)),  # v1 ordering, not pre-activation
    "resnet26": _imagenet(stage_sizes=(1, 2, 4, 1)),
    "resnet38": _imagenet(stage_sizes=(2, 3, 5, 2)),
    "resnet50": _imagenet(stage_sizes=(3, 4, 6, 3)),
}


def make_resnet(name: str, *, num_classes: int, in_features: int, spatial_layer: SpatialLayerFactory = conv3x3,
                activation: str = "relu", rngs: nnx.Rngs, **overrides) -> ResNet:
    """The named architecture from RESNETS, with any ResNet keyword overridden."""
    kwargs = dict(lookup(RESNETS, name, "resnet"), **overrides)
    return ResNet(num_classes=num_classes, in_features=in_features, spatial_layer=spatial_layer,
                  activation=activation, rngs=rngs, **kwargs)


