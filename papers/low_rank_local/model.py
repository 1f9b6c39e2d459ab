"""The paper's small network: a few kxk stride-1 VALID layers (each -> BN -> ReLU), global average pool, dense.

The spatial layer is chosen by name (LAYERS, config.model.layer): "conv", "lrlc" (low-rank locally connected
of rank config.model.rank), "lc" (dense locally connected) or "wide_conv" (a convolution with one width for
every layer, chosen by common.nn.locally_connected.matched_conv_width so that its spatial layers have as many
parameters as those of the network with config.model.wide_conv_target: "lrlc" at the same rank, or "lc").
As in the paper's code, conv and LRLC layers have no channel bias (BatchNorm follows; LRLC keeps its spatial
bias) and LC layers keep their per-position bias; every kernel starts He-uniform.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from ml_collections import ConfigDict

from common.compat import List
from common.nn import counting
from common.nn.locally_connected import (
    LocallyConnected2D,
    LowRankLocallyConnected2D,
    matched_conv_width,
    output_size_and_padding,
)
from common.registry import lookup

BN_MOMENTUM, BN_EPSILON = 0.9, 1e-5
SpatialLayer = Callable[[ConfigDict, int, int, tuple[int, int], nnx.Rngs], nnx.Module]


def _conv(model: ConfigDict, in_features: int, out_features: int, input_size, rngs: nnx.Rngs) -> nnx.Module:
    k = model.kernel_size
    init = nnx.initializers.he_uniform()
    return nnx.Conv(
        in_features, out_features, (k, k), padding=model.padding, use_bias=False, kernel_init=init, rngs=rngs
    )


def _lrlc(model: ConfigDict, in_features: int, out_features: int, input_size, rngs: nnx.Rngs) -> nnx.Module:
    return LowRankLocallyConnected2D(
        in_features,
        out_features,
        model.kernel_size,
        input_size=input_size,
        rank=model.rank,
        combining=model.combining,
        normalisation=model.normalisation,
        padding=model.padding,
        use_bias=False,
        rngs=rngs,
    )


def _lc(model: ConfigDict, in_features: int, out_features: int, input_size, rngs: nnx.Rngs) -> nnx.Module:
    return LocallyConnected2D(
        in_features, out_features, model.kernel_size, input_size=input_size, padding=model.padding, rngs=rngs
    )


# config.model.layer -> the spatial layer; "wide_conv" builds `_conv` layers at the parameter-matched width.
LAYERS: dict[str, SpatialLayer] = {"conv": _conv, "lrlc": _lrlc, "lc": _lc, "wide_conv": _conv}
WIDE_CONV_TARGETS = ("lrlc", "lc")


class SmallNetwork(nnx.Module):
    """[N, H, W, C] -> logits [N, num_classes] through `layer` (one of LAYERS) at the given widths."""

    def __init__(
        self,
        model: ConfigDict,
        layer: str,
        widths: tuple[int, ...],
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        rngs: nnx.Rngs,
    ):
        make_layer = lookup(LAYERS, layer, "spatial layer")
        size, in_features = tuple(input_shape[:2]), input_shape[2]
        self.spatial, self.norms = List(), List()
        for width in widths:
            self.spatial.append(make_layer(model, in_features, width, size, rngs))
            self.norms.append(nnx.BatchNorm(width, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs))
            size = tuple(output_size_and_padding(n, model.kernel_size, 1, model.padding)[0] for n in size)
            in_features = width
        self.head = nnx.Linear(in_features, num_classes, rngs=rngs)

    def spatial_params(self) -> int:
        """Parameters of the spatial layers alone (what the wide conv baseline is matched on)."""
        return sum(counting.count_params(layer) for layer in self.spatial)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, C] -> logits [N, num_classes]."""
        for layer, norm in zip(self.spatial, self.norms, strict=True):
            x = jax.nn.relu(norm(layer(x)))
        return self.head(jnp.mean(x, axis=(1, 2)))


def wide_conv_width(model: ConfigDict, input_shape: tuple[int, int, int]) -> int:
    """The width of the wide conv network matched to the spatial parameters of model.wide_conv_target's."""
    target = lookup({name: name for name in WIDE_CONV_TARGETS}, model.wide_conv_target, "wide conv target")
    widths = tuple(model.widths)
    reference = nnx.eval_shape(lambda: SmallNetwork(model, target, widths, input_shape, 1, rngs=nnx.Rngs(0)))
    return matched_conv_width(reference.spatial_params(), input_shape[2], model.kernel_size, len(widths))


def build_model(
    config: ConfigDict, input_shape: tuple[int, int, int], num_classes: int, rngs: nnx.Rngs
) -> SmallNetwork:
    model = config.model
    widths = tuple(model.widths)
    if model.layer == "wide_conv":
        widths = (wide_conv_width(model, input_shape),) * len(widths)
    return SmallNetwork(model, model.layer, widths, input_shape, num_classes, rngs=rngs)
