"""One ResNet family whose spatial layer and activation are parameters.

Later papers plug their layer into the same backbone: stand-alone local self-attention, halo attention and
low-rank locally connected layers replace `spatial_layer` (the 3x3 conv of every block); searched activations
replace `activation`. Everything else (blocks, stems, stage layout, BatchNorm, head) stays the same, so the
comparison a paper makes isolates the one thing it changes.

Layout (He et al. 2016, post-activation "v1", with the stride on the 3x3 as in torchvision's "v1.5"):
  cifar stem        3x3 conv -> BN -> act;                        3 stages of widths w, 2w, 4w
  imagenet stem     7x7/2 conv -> BN -> act -> 3x3/2 max pool;    4 stages of widths w, 2w, 4w, 8w
  basic block       spatial(stride) -> BN -> act -> spatial -> BN, + shortcut, act
  bottleneck block  1x1 -> BN -> act -> spatial(stride) -> BN -> act -> 1x1 (x4) -> BN, + shortcut, act
  shortcut          identity, or 1x1 conv (stride s) -> BN where the shape changes
  head              [optional 1x1 conv -> BN -> act] -> global average pool -> linear
Every stage but the first starts with a stride-2 block. Every activation is its own module instance, because
PReLU and Swish learn per-channel parameters.

Options that leave the default nets unchanged (HaloNet's family needs them): one spatial layer factory per
stage instead of one for all; bottleneck width multipliers (the spatial layer outputs `spatial_ratio` x the
block's width, the block outputs `output_ratio` x it instead of 4x); a final 1x1 conv of `final_features`
channels before the pool.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import nnx

from common.compat import List
from common.nn import local_attention
from common.nn.activations import ACTIVATIONS, ActivationFactory, make_activation
from common.registry import lookup


class SpatialLayerFactory(Protocol):
    """Builds the layer that mixes information across pixels: [N,H,W,Cin] -> [N,H/stride,W/stride,Cout].

    The output size must be ceil(H / stride) like a SAME convolution. The ResNet follows it with BatchNorm, so
    the layer needs no bias. It computes in whatever dtype it chooses; close over the model's dtype to match it.
    """

    def __call__(self, in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> nnx.Module: ...


def conv3x3(in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs, dtype: Any = None) -> nnx.Conv:
    """The default spatial layer: 3x3 convolution, no bias, SAME-sized output.

    The padding is 1 on every side rather than XLA's SAME, which at stride 2 pads only bottom/right: with
    symmetric padding the strided 3x3 is centred on the even pixels, the same ones the strided 1x1 shortcut
    samples (as in torchvision). At stride 1 the two are identical.
    """
    return nnx.Conv(
        in_features, out_features, (3, 3), strides=stride, padding=1, use_bias=False, dtype=dtype, rngs=rngs
    )


@dataclasses.dataclass(frozen=True)
class BlockOptions:
    """What every block (and the stem) of one network shares."""

    spatial_layer: SpatialLayerFactory
    activation: str | ActivationFactory  # a name in ACTIVATIONS, or a factory (searched activations)
    bn_momentum: float
    zero_init_residual: bool
    dtype: Any
    spatial_ratio: float = 1.0  # bottleneck: the spatial layer outputs round(width * spatial_ratio) channels
    output_ratio: float | None = None  # bottleneck: the block outputs round(width * output_ratio); None: 4 * width


def _conv1x1(
    in_features: int, out_features: int, options: BlockOptions, *, stride: int = 1, rngs: nnx.Rngs
) -> nnx.Conv:
    return nnx.Conv(
        in_features,
        out_features,
        (1, 1),
        strides=stride,
        padding="VALID",
        use_bias=False,
        dtype=options.dtype,
        rngs=rngs,
    )


def _batch_norm(features: int, options: BlockOptions, *, zero_scale: bool = False, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm; a zero scale makes a residual branch start as the identity (Goyal et al. 2017)."""
    scale_init = nnx.initializers.zeros_init() if zero_scale else nnx.initializers.ones_init()
    return nnx.BatchNorm(
        features, momentum=options.bn_momentum, epsilon=1e-5, scale_init=scale_init, dtype=options.dtype, rngs=rngs
    )


class Shortcut(nnx.Module):
    """Identity, or a strided 1x1 projection + BN where the block changes the shape."""

    def __init__(self, in_features: int, out_features: int, stride: int, options: BlockOptions, *, rngs: nnx.Rngs):
        self.projects = stride != 1 or in_features != out_features
        if self.projects:
            self.conv = _conv1x1(in_features, out_features, options, stride=stride, rngs=rngs)
            self.norm = _batch_norm(out_features, options, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, H/stride, W/stride, out_features]."""
        return self.norm(self.conv(x)) if self.projects else x


class BasicBlock(nnx.Module):
    """Two spatial layers (the first carries the stride); CIFAR ResNet-20/56."""

    expansion = 1

    def __init__(self, in_features: int, features: int, stride: int, options: BlockOptions, *, rngs: nnx.Rngs):
        if options.spatial_ratio != 1.0 or options.output_ratio is not None:
            raise ValueError("spatial_ratio and output_ratio are bottleneck options; a basic block keeps its width")
        self.out_features = features
        self.spatial1 = options.spatial_layer(in_features, features, stride=stride, rngs=rngs)
        self.norm1 = _batch_norm(features, options, rngs=rngs)
        self.act1 = make_activation(options.activation, features, rngs=rngs)
        self.spatial2 = options.spatial_layer(features, features, stride=1, rngs=rngs)
        self.norm2 = _batch_norm(features, options, zero_scale=options.zero_init_residual, rngs=rngs)
        self.shortcut = Shortcut(in_features, features, stride, options, rngs=rngs)
        self.act_out = make_activation(options.activation, features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, H/stride, W/stride, features]."""
        y = self.act1(self.norm1(self.spatial1(x)))
        y = self.norm2(self.spatial2(y))
        return self.act_out(y + self.shortcut(x))


class BottleneckBlock(nnx.Module):
    """1x1 reduce, spatial layer (carries the stride), 1x1 expand by 4; ResNet-26/38/50 and CIFAR ResNet-164.

    With `options.spatial_ratio` / `output_ratio` (HaloNet's rv / rb): 1x1 to `features`, spatial layer to
    round(features * spatial_ratio), 1x1 to round(features * output_ratio) channels.
    """

    expansion = 4

    def __init__(self, in_features: int, features: int, stride: int, options: BlockOptions, *, rngs: nnx.Rngs):
        ratio = options.output_ratio
        out_features = features * self.expansion if ratio is None else round(features * ratio)
        spatial_features = round(features * options.spatial_ratio)
        self.out_features = out_features
        self.reduce = _conv1x1(in_features, features, options, rngs=rngs)
        self.norm1 = _batch_norm(features, options, rngs=rngs)
        self.act1 = make_activation(options.activation, features, rngs=rngs)
        self.spatial = options.spatial_layer(features, spatial_features, stride=stride, rngs=rngs)
        self.norm2 = _batch_norm(spatial_features, options, rngs=rngs)
        self.act2 = make_activation(options.activation, spatial_features, rngs=rngs)
        self.expand = _conv1x1(spatial_features, out_features, options, rngs=rngs)
        self.norm3 = _batch_norm(out_features, options, zero_scale=options.zero_init_residual, rngs=rngs)
        self.shortcut = Shortcut(in_features, out_features, stride, options, rngs=rngs)
        self.act_out = make_activation(options.activation, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, H/stride, W/stride, 4 * features]."""
        y = self.act1(self.norm1(self.reduce(x)))
        y = self.act2(self.norm2(self.spatial(y)))
        y = self.norm3(self.expand(y))
        return self.act_out(y + self.shortcut(x))


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class CifarStem(nnx.Module):
    """3x3 conv -> BN -> act at full resolution, for 32x32 images; three stages follow."""

    num_stages = 3
    stride = 1

    def __init__(self, in_features: int, width: int, options: BlockOptions, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(
            in_features, width, (3, 3), strides=self.stride, padding=1, use_bias=False, dtype=options.dtype, rngs=rngs
        )
        self.norm = _batch_norm(width, options, rngs=rngs)
        self.act = make_activation(options.activation, width, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, ceil(H/stride), ceil(W/stride), width]."""
        return self.act(self.norm(self.conv(x)))


class StridedCifarStem(CifarStem):
    """The CIFAR stem's conv at stride 2, so the three stages run at 1/2, 1/4 and 1/8 of the image (14, 7 and 4 px
    on 28x28) and cost about a quarter as much: the reproduce-scale networks on CPU."""

    stride = 2


class ImageNetStem(nnx.Module):
    """7x7/2 conv -> BN -> act -> 3x3/2 max pool: 4x downsampling before the first of four stages."""

    num_stages = 4

    def __init__(self, in_features: int, width: int, options: BlockOptions, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(
            in_features, width, (7, 7), strides=2, padding=3, use_bias=False, dtype=options.dtype, rngs=rngs
        )
        self.norm = _batch_norm(width, options, rngs=rngs)
        self.act = make_activation(options.activation, width, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, H/4, W/4, width]."""
        x = self.act(self.norm(self.conv(x)))
        return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


# A stem is a module class built as `Stem(in_features, width, options, rngs=rngs)`, mapping [N,H,W,in_features]
# to [N,H',W',width], with a class attribute `num_stages` (how many stages of widths width * 2**i follow it).
# To add one (say, an attention stem), write such a class and add it here.
STEMS = {
    "cifar": CifarStem,
    "cifar_stride2": StridedCifarStem,
    "imagenet": ImageNetStem,
    "attention": local_attention.AttentionStem,
}


class ResNet(nnx.Module):
    """Stem, stages of residual blocks, [1x1 conv,] global-average-pooled linear head.

    `spatial_layer` is one factory for every block, or a sequence of one per stage (say attention in the later
    stages and the 3x3 conv in the others). `spatial_ratio`, `output_ratio` (bottleneck widths) and
    `final_features` (a 1x1 conv -> BN -> act before the pool) are off by default. `dtype` is the computation
    dtype of every layer the network builds itself (parameters stay float32); the default `conv3x3` follows it
    too, while a custom `spatial_layer` factory picks its own. Train/eval mode (BatchNorm batch vs running
    statistics) is nnx's `model.train()` / `model.eval()`.
    """

    def __init__(
        self,
        *,
        stage_sizes: Sequence[int],
        block: str,
        num_classes: int,
        in_features: int,
        width: int,
        stem: str,
        spatial_layer: SpatialLayerFactory | Sequence[SpatialLayerFactory] = conv3x3,
        activation: str | ActivationFactory = "relu",
        bn_momentum: float = 0.9,
        zero_init_residual: bool = True,
        spatial_ratio: float = 1.0,
        output_ratio: float | None = None,
        final_features: int | None = None,
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        block_cls = lookup(BLOCKS, block, "resnet block")
        stem_cls = lookup(STEMS, stem, "resnet stem")
        if len(stage_sizes) != stem_cls.num_stages:
            raise ValueError(f"a {stem!r} stem takes {stem_cls.num_stages} stages, got stage_sizes={stage_sizes}")
        stage_layers = (
            list(spatial_layer) if isinstance(spatial_layer, Sequence) else [spatial_layer] * len(stage_sizes)
        )
        if len(stage_layers) != len(stage_sizes):
            raise ValueError(f"got {len(stage_layers)} spatial layer factories for {len(stage_sizes)} stages")
        stage_layers = [functools.partial(conv3x3, dtype=dtype) if f is conv3x3 else f for f in stage_layers]
        options = BlockOptions(
            stage_layers[0], activation, bn_momentum, zero_init_residual, dtype, spatial_ratio, output_ratio
        )
        if not callable(activation):
            lookup(ACTIVATIONS, activation, "activation")  # fail on a bad name before building anything large

        self.stem = stem_cls(in_features, width, options, rngs=rngs)
        blocks = []
        features = width
        for stage, num_blocks in enumerate(stage_sizes):
            stage_width = width * 2**stage
            stage_options = dataclasses.replace(options, spatial_layer=stage_layers[stage])
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block_cls(features, stage_width, stride, stage_options, rngs=rngs))
                features = blocks[-1].out_features
        self.blocks = List(blocks)
        self.final_features = final_features
        if final_features:
            self.final_conv = _conv1x1(features, final_features, options, rngs=rngs)
            self.final_norm = _batch_norm(final_features, options, rngs=rngs)
            self.final_act = make_activation(activation, final_features, rngs=rngs)
            features = final_features
        self.head = nnx.Linear(features, num_classes, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] images -> [N, num_classes] logits (in `dtype`)."""
        x = self.stem(x.astype(self.dtype))
        for block in self.blocks:
            x = block(x)
        if self.final_features:
            x = self.final_act(self.final_norm(self.final_conv(x)))
        return self.head(x.mean(axis=(1, 2)))


def stage_indices(stages: str | Sequence[int] | None, num_stages: int) -> tuple[int, ...]:
    """A choice of stages (say, which ones use attention) -> sorted indices in [0, num_stages).

    None or "all": every stage; "early": the first half (num_stages // 2, at least one); "late": the last half;
    "none" or "": no stage; or 0-based indices, as a sequence or a comma-separated string ("1,2", "-1"; negative
    ones count from the end).
    """
    half = max(1, num_stages // 2)
    named = {
        "all": range(num_stages),
        "early": range(half),
        "late": range(num_stages - half, num_stages),
        "none": (),
        "": (),
    }
    if stages is None:
        stages = "all"
    if isinstance(stages, str) and stages.strip() in named:
        indices = list(named[stages.strip()])
    else:
        if isinstance(stages, str):
            text = stages.strip().strip("()[]")
            try:
                stages = [int(part) for part in text.split(",") if part.strip()]
            except ValueError:
                choices = sorted(name for name in named if name)
                raise ValueError(
                    f"stages={stages!r}: expected one of {choices} or 0-based indices like '1,2'"
                ) from None
        indices = [int(i) for i in stages]
        if any(not -num_stages <= i < num_stages for i in indices):
            raise ValueError(f"stages {tuple(indices)} out of range for {num_stages} stages")
    return tuple(sorted({i % num_stages for i in indices}))


def stage_spatial_layers(
    layer: Callable[[int], SpatialLayerFactory],
    stages: str | Sequence[int] | None,
    num_stages: int,
    *,
    other: SpatialLayerFactory = conv3x3,
) -> list[SpatialLayerFactory]:
    """The `spatial_layer` list of a ResNet whose config places a layer in some stages only (say attention in
    `attention_stages`): `layer(stage)` in the stages `stages` names (any form of `stage_indices`), `other` (the
    3x3 conv) in the rest. `layer` takes the stage index, so per-stage settings (HaloNet's heads) fit too."""
    chosen = stage_indices(stages, num_stages)
    return [layer(stage) if stage in chosen else other for stage in range(num_stages)]


# name -> ResNet keyword arguments. The CIFAR nets are from He et al. (2016); resnet164 keeps this file's
# post-activation block order rather than the pre-activation order of He et al. (2016b), same layers and
# parameter count (1.70M). resnet26/38 are the shallower ImageNet nets of the local self-attention papers.
RESNETS: dict[str, dict[str, Any]] = {
    "resnet_tiny": dict(stem="cifar", block="basic", stage_sizes=(1, 1, 1), width=8),  # tests and smoke runs
    "resnet20": dict(stem="cifar", block="basic", stage_sizes=(3, 3, 3), width=16),
    "resnet56": dict(stem="cifar", block="basic", stage_sizes=(9, 9, 9), width=16),
    "resnet164": dict(stem="cifar", block="bottleneck", stage_sizes=(18, 18, 18), width=16),
    "resnet26": dict(stem="imagenet", block="bottleneck", stage_sizes=(1, 2, 4, 1), width=64),
    "resnet38": dict(stem="imagenet", block="bottleneck", stage_sizes=(2, 3, 5, 2), width=64),
    "resnet50": dict(stem="imagenet", block="bottleneck", stage_sizes=(3, 4, 6, 3), width=64),
}


def make_resnet(
    name: str,
    *,
    num_classes: int,
    in_features: int,
    spatial_layer: SpatialLayerFactory | Sequence[SpatialLayerFactory] = conv3x3,
    activation: str | ActivationFactory = "relu",
    rngs: nnx.Rngs,
    **overrides,
) -> ResNet:
    """The named architecture from RESNETS; `overrides` replace any of its ResNet keyword arguments."""
    kwargs = {**lookup(RESNETS, name, "resnet"), **overrides}
    return ResNet(
        num_classes=num_classes,
        in_features=in_features,
        spatial_layer=spatial_layer,
        activation=activation,
        rngs=rngs,
        **kwargs,
    )
