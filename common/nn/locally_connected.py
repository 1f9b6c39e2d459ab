"""Locally connected layers: low-rank (Elsayed et al. 2020) and dense, plus the parameter-matched wide conv rule.

A locally connected (LC) layer is a convolution whose filter bank is different at every output position. The
low-rank version (LRLC) keeps K basis filter banks W_1..W_K and builds the bank at output position (i, j) as
sum_k w_ij^k W_k. It is computed as one convolution with K * Cout filters, reshaped to [N, H', W', K, Cout] and
contracted with the combining weights w [H', W', K] (or [N, H', W', K] when a small network predicts them from
the input), so it costs about K convolutions and never materialises the per-position kernels.

Combining weights (COMBININGS): "row_column" (default) w_ij = alpha_i + beta_j from a row table [H', K] and a
column table [W', K]; "row" (alpha_i only: shared along each row); "column"; "full" (an [H', W', K] table);
"input_dependent" (InputDependentCombiningWeights). They are normalised over K by one of NORMALISATIONS: softmax
(default), l2 (unit norm) or none. All tables start constant, so with softmax the layer starts as a convolution
with the mean basis. The bias is per channel plus a spatial bias shaped like the combining weights (row + column
tables, one of them, or a full [H', W'] table).

Padding is "VALID" as in the paper (output (H - kh) // stride + 1), or "SAME" (output ceil(H / stride), XLA's
padding rule). Both layers need the input's spatial size at construction: their tables are per output position.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.compat import List, data
from common.registry import lookup


def _valid(size: int, kernel: int, stride: int) -> tuple[int, tuple[int, int]]:
    if size < kernel:
        raise ValueError(f"input size {size} is smaller than the kernel {kernel} under VALID padding")
    return (size - kernel) // stride + 1, (0, 0)


def _same(size: int, kernel: int, stride: int) -> tuple[int, tuple[int, int]]:
    """XLA's SAME: output ceil(size / stride); an odd total pad puts the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, (total // 2, total - total // 2)


PADDINGS = {"VALID": _valid, "SAME": _same}


def output_size_and_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, tuple[int, int]]:
    """(output length, (pad before, pad after)) of one spatial axis under `padding` (one of PADDINGS)."""
    return lookup(PADDINGS, padding.upper(), "padding")(size, kernel, stride)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _SpatialGeometry:
    """Output size and explicit padding of a kh x kw, stride-s window over an H x W input."""

    def __init__(self, input_size, kernel_size, stride: int, padding: str):
        self.input_size = _pair(input_size)
        self.kernel_size = _pair(kernel_size)
        self.stride = stride
        (out_h, pad_h), (out_w, pad_w) = (
            output_size_and_padding(size, kernel, stride, padding)
            for size, kernel in zip(self.input_size, self.kernel_size, strict=True)
        )
        self.output_size = (out_h, out_w)
        self.padding = (pad_h, pad_w)

    def check(self, x: jax.Array, in_features: int, layer: str) -> None:
        expected = (*self.input_size, in_features)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{layer} was built for inputs [N, {', '.join(map(str, expected))}], got {x.shape}")


# ---------------------------------------------------------------------------------------------------------------
# Normalisation of the combining weights over the basis axis K.


def _l2_unit_norm(weights: jax.Array) -> jax.Array:
    return weights * jax.lax.rsqrt(jnp.maximum(jnp.sum(weights**2, axis=-1, keepdims=True), 1e-24))


NORMALISATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "softmax": lambda weights: jax.nn.softmax(weights, axis=-1),
    "l2": _l2_unit_norm,
    "none": lambda weights: weights,
}


# ---------------------------------------------------------------------------------------------------------------
# Combining-weight parameterisations -> the tables they learn: row [H', K], column [W', K] or full [H', W', K]
# (input_dependent learns none: InputDependentCombiningWeights predicts the weights).

_TABLES = {
    "row_column": ("row", "column"),
    "row": ("row",),
    "column": ("column",),
    "full": ("full",),
    "input_dependent": (),
}
COMBININGS = tuple(_TABLES)


def _table_shape(table: str, output_size: tuple[int, int], depth: int) -> tuple[int, int, int]:
    """Shape of one table, broadcastable to [H', W', depth]."""
    height, width = output_size
    return {"row": (height, 1, depth), "column": (1, width, depth), "full": (height, width, depth)}[table]


def resize_bilinear_align_corners(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of x [N, H, W, C] to [N, *size, C] with the corner pixels aligned (TF's align_corners=True).

    Written as two small interpolation matrices, because jax.image.resize samples at half-pixel centres.
    """

    def matrix(n_in: int, n_out: int) -> np.ndarray:
        positions = np.linspace(0.0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
        lower = np.clip(np.floor(positions).astype(int), 0, max(n_in - 2, 0))
        frac = positions - lower
        result = np.zeros((n_out, n_in), np.float32)
        result[np.arange(n_out), lower] += 1 - frac
        result[np.arange(n_out), np.minimum(lower + 1, n_in - 1)] += frac
        return result

    rows, cols = matrix(x.shape[1], size[0]), matrix(x.shape[2], size[1])
    return jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols)


class InputDependentCombiningWeights(nnx.Module):
    """Predicts per-example combining logits [N, H', W', K] from the layer's input [N, H, W, Cin].

    A 1x1 conv reduces the input to K channels; its global mean, it and depthwise 3x3 convs of it with dilations
    1, 2, 4, 8 (VALID; a dilation is used only where it fits the input, r <= (min(H, W) - 1) // 2) are resized
    to the output size and concatenated (C = (2 + #dilations) K channels); then 1x1 layers C -> C/2 (ReLU) -> C
    (sigmoid) -> K, the squeeze-excite-shaped head of the paper's code. Normalisation happens in the layer.
    """

    DILATIONS = (1, 2, 4, 8)

    def __init__(self, in_features: int, rank: int, input_size, output_size, *, rngs: nnx.Rngs):
        self.output_size = tuple(output_size)
        self.reduce = nnx.Conv(in_features, rank, (1, 1), rngs=rngs)
        smallest = min(_pair(input_size))
        self.dilations = tuple(r for r in self.DILATIONS if r <= (smallest - 1) // 2)
        self.multiscale = List(
            [
                nnx.Conv(rank, rank, (3, 3), kernel_dilation=r, padding="VALID", feature_group_count=rank, rngs=rngs)
                for r in self.dilations
            ]
        )
        channels = (2 + len(self.dilations)) * rank
        self.squeeze = nnx.Conv(channels, max(channels // 2, 1), (1, 1), rngs=rngs)
        self.excite = nnx.Conv(max(channels // 2, 1), channels, (1, 1), rngs=rngs)
        self.project = nnx.Conv(channels, rank, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, Cin] -> combining logits [N, H', W', K]."""
        reduced = self.reduce(x)
        pooled = jnp.mean(reduced, axis=(1, 2), keepdims=True)
        maps = [resize_bilinear_align_corners(reduced, self.output_size)]
        maps.append(jnp.broadcast_to(pooled, (x.shape[0], *self.output_size, pooled.shape[-1])))
        maps += [resize_bilinear_align_corners(conv(reduced), self.output_size) for conv in self.multiscale]
        features = jnp.concatenate(maps, axis=-1)
        gates = jax.nn.sigmoid(self.excite(jax.nn.relu(self.squeeze(features))))
        return self.project(gates)


class LowRankLocallyConnected2D(nnx.Module):
    """LRLC: K basis filter banks combined with per-position weights: [N, H, W, Cin] -> [N, H', W', Cout].

    rank: K. combining: one of COMBININGS. normalisation: one of NORMALISATIONS. use_bias: the per-channel bias
    (the spatial bias is always there; a following BatchNorm makes the channel bias redundant, not the spatial
    one). Bases start He-uniform over fan-in kh * kw * Cin, like the paper's code.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int],
        *,
        input_size: int | tuple[int, int],
        rank: int,
        combining: str = "row_column",
        normalisation: str = "softmax",
        stride: int = 1,
        padding: str = "VALID",
        use_bias: bool = True,
        rngs: nnx.Rngs,
    ):
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        tables = lookup(_TABLES, combining, "combining-weight parameterisation")
        self.normalise = lookup(NORMALISATIONS, normalisation, "combining-weight normalisation")
        self.geometry = _SpatialGeometry(input_size, kernel_size, stride, padding)
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.combining = combining
        kh, kw = self.geometry.kernel_size
        self.bases = nnx.Param(nnx.initializers.he_uniform()(rngs.params(), (kh, kw, in_features, rank * out_features)))
        # Tables summed at a position all start at c / sqrt(K) with c = 1 / (number of tables): the sum is
        # 1 / sqrt(K) everywhere (unit L2 norm after "l2", uniform after softmax).
        start = 1.0 / (max(len(tables), 1) * math.sqrt(rank))
        output_size = self.geometry.output_size
        self.weight_tables = data({t: nnx.Param(jnp.full(_table_shape(t, output_size, rank), start)) for t in tables})
        bias_tables = tables or ("full",)
        self.spatial_bias = data({t: nnx.Param(jnp.zeros(_table_shape(t, output_size, 1))) for t in bias_tables})
        self.channel_bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.weight_network = (
            InputDependentCombiningWeights(in_features, rank, input_size, output_size, rngs=rngs)
            if combining == "input_dependent"
            else None
        )

    @property
    def output_size(self) -> tuple[int, int]:
        return self.geometry.output_size

    def combining_weights(self, x: jax.Array | None = None) -> jax.Array:
        """Normalised weights: [H', W', K], or [N, H', W', K] for the input-dependent variant (which needs x)."""
        if self.weight_network is not None:
            if x is None:
                raise ValueError("input-dependent combining weights need the layer input x")
            logits = self.weight_network(x)
        else:
            logits = sum(table.value for table in self.weight_tables.values())
            logits = jnp.broadcast_to(logits, (*self.output_size, self.rank))
        return self.normalise(logits)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, Cin] -> [N, H', W', Cout]."""
        self.geometry.check(x, self.in_features, "LowRankLocallyConnected2D")
        responses = jax.lax.conv_general_dilated(
            x,
            self.bases.value.astype(x.dtype),
            window_strides=(self.geometry.stride,) * 2,
            padding=self.geometry.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        responses = responses.reshape(*responses.shape[:3], self.rank, self.out_features)
        weights = self.combining_weights(x).astype(responses.dtype)
        # A broadcast multiply and a sum over K: XLA fuses it, where an einsum with the positions as batch axes
        # becomes H' * W' tiny matrix products (an order of magnitude slower on CPU).
        y = jnp.sum(responses * weights[..., None], axis=-2)
        y = y + sum(table.value for table in self.spatial_bias.values())
        return y if self.channel_bias is None else y + self.channel_bias.value


class LocallyConnected2D(nnx.Module):
    """Dense LC: its own kh x kw x Cin x Cout kernel at every output position: [N, H, W, Cin] -> [N, H', W', Cout].

    kernel: [H', W', kh, kw, Cin, Cout], each position's bank initialised He-uniform (fan-in kh * kw * Cin);
    bias: [H', W', Cout] (use_bias). Computed as window patches [N, H', W', kh * kw * Cin] contracted per position.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int],
        *,
        input_size: int | tuple[int, int],
        stride: int = 1,
        padding: str = "VALID",
        use_bias: bool = True,
        rngs: nnx.Rngs,
    ):
        self.geometry = _SpatialGeometry(input_size, kernel_size, stride, padding)
        self.in_features, self.out_features = in_features, out_features
        kh, kw = self.geometry.kernel_size
        shape = (*self.geometry.output_size, kh, kw, in_features, out_features)
        self.kernel = nnx.Param(nnx.initializers.he_uniform(in_axis=(2, 3, 4), out_axis=5)(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((*self.geometry.output_size, out_features))) if use_bias else None

    @property
    def output_size(self) -> tuple[int, int]:
        return self.geometry.output_size

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, Cin] -> [N, H', W', Cout]."""
        self.geometry.check(x, self.in_features, "LocallyConnected2D")
        (out_h, out_w), (kh, kw), s = self.geometry.output_size, self.geometry.kernel_size, self.geometry.stride
        x = jnp.pad(x, ((0, 0), *self.geometry.padding, (0, 0)))
        windows = [
            x[:, di : di + s * (out_h - 1) + 1 : s, dj : dj + s * (out_w - 1) + 1 : s]
            for di in range(kh)
            for dj in range(kw)
        ]
        patches = jnp.stack(windows, axis=3).reshape(x.shape[0], out_h, out_w, kh * kw * self.in_features)
        kernel = self.kernel.value.astype(x.dtype).reshape(out_h, out_w, -1, self.out_features)
        y = jnp.einsum("nhwp,hwpc->nhwc", patches, kernel)
        return y if self.bias is None else y + self.bias.value


def matched_conv_width(
    target_params: int, in_features: int, kernel_size: int | tuple[int, int], num_layers: int = 1
) -> int:
    """The one width W of a stack of `num_layers` bias-free kh x kw convs (in_features -> W -> ... -> W) whose
    weight count kh * kw * (in_features * W + (num_layers - 1) * W^2) is closest to `target_params`.

    The rule behind the paper's "wide convolution" baseline: a plain convolutional stack with as many parameters
    as the locally connected (LRLC or LC) stack it is compared with, every layer widened alike.
    """
    if target_params < 1 or num_layers < 1:
        raise ValueError(f"need target_params >= 1 and num_layers >= 1, got {target_params}, {num_layers}")
    kh, kw = _pair(kernel_size)

    def count(width: int) -> int:
        return kh * kw * (in_features * width + (num_layers - 1) * width * width)

    width = 1
    while count(width + 1) <= target_params:
        width += 1
    return width + 1 if abs(count(width + 1) - target_params) < abs(count(width) - target_params) else width
