"""The arrays one cached generation step works on, the layer cells it runs, and the shape checks.

A stack of L layers, each one cell: one or two causal convs whose past inputs live in a shared cache
[slots, B, C] (rows chosen by the caller: 1-D rings for sequences, 2-D windows mapped to rows for images), then
the cell's unit. A conv's pre-activation, in G groups of R channels:
  a = [f(x[tap 1]), ..., f(x[tap k-1])] past^T + f(x[t]) current^T + bias (+ gate_bias, an input per step)
where the taps are the rows `read_slots` names (oldest first) and f the cell's input map (identity or
concat_elu, [C] -> [2C]: the cache holds the raw inputs, so a zero row is the zero padding after f as well).
The cells (CELLS):
  gated (WaveNet): one conv, G = 2; z = tanh(a_filter) * sigmoid(a_gate) [B, R];
        x <- x + z residual^T + residual_bias; skip += z skip_l^T           (the step returns the skip sum [B, S])
  relu (the Fast WaveNet demo): one conv, G = 1, R = C; x <- relu(a)         (the step returns the last x [B, C])
  gated_resnet (PixelCNN++'s gated resnet block, dropout off): f = concat_elu, two convs of R = C;
        h = a (G = 1; gate_bias: the aux input's projection at this position), written to the second conv's cache;
        (a, b) = second conv over h (out_*, G = 2); x <- x + a * sigmoid(b)  (the step returns every x [L, B, C],
        the skip connections of a U-net)
Weights are stored [outputs, inputs] (rows are output channels): a product at batch 1 is then a multiply and a
reduction over the contiguous last axis, which XLA fuses (see `project`). Groups are a leading axis rather than
halves of one channel axis so that a kernel never slices a value.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels.base import (
    check_choice,
    check_dtype,
    check_floating,
    check_integer_dtype,
    check_nonempty,
    check_rank,
    check_shape,
    check_slots,
)


class Cell(NamedTuple):
    """A layer's structure: its convs' output groups (one entry per conv) and their input map."""

    groups: tuple[int, ...]
    input_map: str  # "identity" or "concat_elu"

    @property
    def convs(self) -> int:
        return len(self.groups)

    @property
    def input_factor(self) -> int:
        """Columns of a conv's weights per cached channel: 2 after concat_elu."""
        return 2 if self.input_map == "concat_elu" else 1


CELLS = {
    "gated": Cell(groups=(2,), input_map="identity"),
    "relu": Cell(groups=(1,), input_map="identity"),
    "gated_resnet": Cell(groups=(1, 2), input_map="concat_elu"),
}


def concat_elu(x: jax.Array) -> jax.Array:
    """[..., C] -> [..., 2C]: elu(x) and elu(-x), so no sign of the signal is thrown away (PixelCNN++'s
    nonlinearity before each conv; common/nn/pixelcnn.py uses this one)."""
    return jax.nn.elu(jnp.concatenate([x, -x], axis=-1))


def input_map(cell: str, x: jax.Array) -> jax.Array:
    """The cell's map f from cached inputs [..., C] to conv inputs [..., C * input_factor]."""
    return concat_elu(x) if CELLS[cell].input_map == "concat_elu" else x


class StackWeights(NamedTuple):
    """Weights of a stack of cached conv layers (shapes in the module docstring; Cf = C * the input factor).

    past [L, G, R, (k-1)*Cf]: columns for the taps before the current one, oldest tap first; current
    [L, G, R, Cf]; bias [L, G, R]. gated only (None otherwise): residual [L, C, R], residual_bias [L, C],
    skip [S, L*R] (layer l's projection in columns l*R .. (l+1)*R: all skips are one matmul), skip_bias [S]
    (the sum of the layers' skip biases). gated_resnet only: the second conv, out_past [L, 2, C, (k-1)*Cf],
    out_current [L, 2, C, Cf], out_bias [L, 2, C].
    """

    past: jax.Array
    current: jax.Array
    bias: jax.Array
    residual: jax.Array | None = None
    residual_bias: jax.Array | None = None
    skip: jax.Array | None = None
    skip_bias: jax.Array | None = None
    out_past: jax.Array | None = None
    out_current: jax.Array | None = None
    out_bias: jax.Array | None = None


def past_taps(read_slots: jax.Array, cell: str) -> int:
    """Past taps per conv: read_slots [L, convs * (k-1)] holds the first conv's taps, then the second's."""
    return read_slots.shape[1] // CELLS[cell].convs


def check_inputs(x, cache, read_slots, write_slots, weights: StackWeights, gate_bias, cell: str) -> None:
    """Raises ValueError naming the first array whose shape does not fit x [B, C] and the weights."""
    check_choice("cell", cell, tuple(CELLS))
    spec = CELLS[cell]
    check_rank("x", x, ("batch", "channels"))
    check_floating("x", x)
    check_nonempty("x", x)
    batch, channels = x.shape
    check_rank("weights.current", weights.current, ("layers", "groups", "R", "inputs"))
    layers, groups, width, _ = weights.current.shape
    if groups != spec.groups[0]:
        raise ValueError(f"cell {cell!r} needs {spec.groups[0]} groups, weights have {groups}")
    if cache.ndim != 3 or cache.shape[1:] != (batch, channels):
        raise ValueError(f"cache must be [slots, {batch}, {channels}] like x, got shape {tuple(cache.shape)}")
    if read_slots.ndim != 2 or read_slots.shape[0] != layers or read_slots.shape[1] % spec.convs:
        raise ValueError(
            f"read_slots must be [{layers} layers, {spec.convs} * (taps - 1)], got shape {tuple(read_slots.shape)}"
        )
    check_shape("write_slots", write_slots, (layers,) if spec.convs == 1 else (layers, spec.convs))
    check_dtype("cache", cache, x.dtype, " like x")
    for name, slots in (("read_slots", read_slots), ("write_slots", write_slots)):
        check_integer_dtype(name, slots)
        check_slots(name, slots, cache.shape[0])
    taps, inputs = past_taps(read_slots, cell), channels * spec.input_factor
    check_shape("weights.current", weights.current, (layers, groups, width, inputs))
    check_shape("weights.past", weights.past, (layers, groups, width, taps * inputs))
    check_shape("weights.bias", weights.bias, (layers, groups, width))
    if gate_bias is not None:
        check_shape("gate_bias", gate_bias, (layers, groups, batch, width))
    if cell == "gated":
        if weights.skip is None or weights.skip.ndim != 2:
            raise ValueError(f"a gated stack needs weights.skip [skip channels, {layers} * {width}]")
        check_shape("weights.residual", weights.residual, (layers, channels, width))
        check_shape("weights.residual_bias", weights.residual_bias, (layers, channels))
        check_shape("weights.skip", weights.skip, (weights.skip.shape[0], layers * width))
        check_shape("weights.skip_bias", weights.skip_bias, (weights.skip.shape[0],))
        return
    if width != channels:
        raise ValueError(f"a {cell} stack feeds each output to the next layer: R={width} must equal C={channels}")
    if cell == "gated_resnet":
        if weights.out_current is None:
            raise ValueError("a gated_resnet stack needs its second conv: weights.out_past, out_current, out_bias")
        check_shape("weights.out_current", weights.out_current, (layers, 2, channels, inputs))
        check_shape("weights.out_past", weights.out_past, (layers, 2, channels, taps * inputs))
        check_shape("weights.out_bias", weights.out_bias, (layers, 2, channels))


def output_shape(x, weights: StackWeights, cell: str) -> tuple[int, ...]:
    """[B, S] (gated: the skip sum), [B, C] (relu: the last layer's output) or [L, B, C] (gated_resnet: every
    layer's output)."""
    if cell == "gated":
        return (x.shape[0], weights.skip.shape[0])
    return (weights.current.shape[0], *x.shape) if cell == "gated_resnet" else tuple(x.shape)


def first_rows(out: jax.Array, batch: int, cell: str) -> jax.Array:
    """A step's output (`output_shape`) cut to its first `batch` rows along its batch axis (the padded rows off)."""
    return out[:, :batch] if cell == "gated_resnet" else out[:batch]


def step_cost(x, cache, read_slots, weights: StackWeights, gate_bias, cell: str) -> tuple[int, int]:
    """(bytes, flops) one step must move and compute at least, for a roofline: any implementation reads every
    weight once, x, gate_bias and the past rows [B, C] that read_slots names, and writes the current rows (one per
    conv and layer) and the output; the FLOPs are the matmuls' 2*B*(outputs)*(inputs): per conv and layer
    G*R x k*Cf (taps), gated also C x R (residual, all layers but the last) and, over the stack, S x L*R (skip).
    Shapes only (arrays or ShapeDtypeStructs); the cache's other rows are neither read nor written (it is updated
    in place).
    """
    spec = CELLS[cell]
    batch, channels = x.shape
    layers, _, width, _ = weights.current.shape
    arrays = [w for w in weights if w is not None] + ([] if gate_bias is None else [gate_bias])
    read_once = sum(int(np.prod(a.shape)) * jnp.dtype(a.dtype).itemsize for a in arrays)
    past_rows = int(np.prod(read_slots.shape))
    output = int(np.prod(output_shape(x, weights, cell)))
    rows = batch * channels * (1 + past_rows + layers * spec.convs) + output  # x, past rows, written rows, out
    taps = past_taps(read_slots, cell) + 1
    flops = sum(2 * batch * layers * groups * width * taps * channels * spec.input_factor for groups in spec.groups)
    if cell == "gated":
        flops += 2 * batch * (layers - 1) * channels * width + 2 * batch * weights.skip.shape[0] * layers * width
    return read_once + rows * jnp.dtype(x.dtype).itemsize, flops


SMALL_BATCH = 4  # at or below it, `project` multiplies and reduces small products instead of calling a matmul
SMALL_WEIGHT = 32768  # larger weights take the matmul at any batch (WaveNet's largest, its [256, 128] head, do not)


def project(x: jax.Array, w: jax.Array, spec: str) -> jax.Array:
    """einsum(spec, x, w) for a small per-layer product: x [..., B, K], weights w [..., N, K], K the one
    contracted axis, last in both (spec names the axes, e.g. "bc,grc->gbr").

    Up to SMALL_BATCH rows and SMALL_WEIGHT weights the product is a broadcast multiply and a sum over the
    contiguous last axis, which XLA on CPU fuses into one loop. As a dot_general each product is a library GEMV
    call whose fixed cost exceeds the work: measured on the 2-core CPU, 20 chained [1, 64] x [64, 64] products
    take about 40 us this way and 140 us as dots. Larger weights go the other way: a PixelCNN++ block's
    [320] -> [2, 160] products (CIFAR-10 sizes) made a 5-block step 1.2 ms as multiply-reduce and 0.44 ms as dots
    at batch 1. Only for short contractions: XLA fuses the producers of x into the loop and recomputes them per
    output, so the stack-wide products (past taps, skip sum) stay dots. Larger batches use the dot.
    """
    inputs, output = spec.split("->")
    x_axes, w_axes = inputs.split(",")
    if x.shape[-2] > SMALL_BATCH or w.size > SMALL_WEIGHT:
        return jnp.einsum(spec, x, w)
    # The weights' own size-1 axes are dropped before the multiply and put back after it: XLA on CPU (JAX 0.10.2)
    # miscompiles this multiply-reduce when constant weights (closed over under jit) have one, e.g. w [1, R, C] for
    # "bc,grc->gbr" at batch >= 2 gives errors of order 10 (test_project_matches_einsum_on_both_paths checks it).
    sizes = dict(zip(x_axes + w_axes, x.shape + w.shape, strict=True))
    unit = {name for name in output if sizes[name] == 1 and name not in x_axes}
    if unit:
        w_axes, kept = ("".join(name for name in axes if name not in unit) for axes in (w_axes, output))
        w = w.reshape([sizes[name] for name in w_axes])
        return project(x, w, f"{x_axes},{w_axes}->{kept}").reshape([sizes[name] for name in output])
    (contracted,) = (name for name in x_axes if name not in output)
    product_axes = output + contracted
    product = _broadcast_to_axes(x, x_axes, product_axes) * _broadcast_to_axes(w, w_axes, product_axes)
    return jnp.sum(product, axis=-1)


def _broadcast_to_axes(array: jax.Array, axes: str, target: str) -> jax.Array:
    """Transposes `array` (named `axes`) into `target`'s order and inserts size-1 axes for the missing names."""
    order = [axes.index(name) for name in target if name in axes]
    array = array.transpose(order) if order != sorted(order) else array
    shape, source = [], iter(array.shape)
    for name in target:
        shape.append(next(source) if name in axes else 1)
    return array.reshape(shape)
