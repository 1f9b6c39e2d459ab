"""The arrays one cached generation step works on, and the shape checks the public function runs on them.

A stack of L causal conv layers of width k over C channels, each producing G groups of R channels:
  gated (WaveNet): G = 2 (filter, gate); z = tanh(a_filter) * sigmoid(a_gate) [B, R];
                   x <- x + z residual^T + residual_bias; skip += z skip_l^T  (the step returns the skip sum [B, S])
  relu (the Fast WaveNet demo): G = 1, R = C; x <- relu(a)                 (the step returns the last x [B, C])
where a = [x[t-(k-1)d], ..., x[t-d]] past^T + x[t] current^T + bias (+ gate_bias, per sequence).
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

ACTIVATIONS = ("gated", "relu")
GROUPS = {"gated": 2, "relu": 1}


class StackWeights(NamedTuple):
    """Weights of a stack of causal conv layers, split for cached steps (shapes in the module docstring).

    past [L, G, R, (k-1)*C]: columns for the taps before the current one, oldest tap first; current
    [L, G, R, C]; bias [L, G, R]; gated only (None for relu): residual [L, C, R], residual_bias [L, C],
    skip [S, L*R] (layer l's projection in columns l*R .. (l+1)*R: all skips are one matrix), skip_bias [S]
    (the sum of the layers' skip biases).
    """

    past: jax.Array
    current: jax.Array
    bias: jax.Array
    residual: jax.Array | None = None
    residual_bias: jax.Array | None = None
    skip: jax.Array | None = None
    skip_bias: jax.Array | None = None


def check_inputs(x, cache, read_slots, write_slots, weights: StackWeights, gate_bias, activation: str) -> None:
    """Raises ValueError naming the first array whose shape does not fit x [B, C] and the weights."""
    check_choice("activation", activation, ACTIVATIONS)
    check_rank("x", x, ("batch", "channels"))
    check_floating("x", x)
    check_nonempty("x", x)
    batch, channels = x.shape
    check_rank("weights.current", weights.current, ("layers", "groups", "R", "channels"))
    layers, groups, width, _ = weights.current.shape
    if groups != GROUPS[activation]:
        raise ValueError(f"activation {activation!r} needs {GROUPS[activation]} groups, weights have {groups}")
    if cache.ndim != 3 or cache.shape[1:] != (batch, channels):
        raise ValueError(f"cache must be [slots, {batch}, {channels}] like x, got shape {tuple(cache.shape)}")
    if read_slots.ndim != 2 or read_slots.shape[0] != layers:
        raise ValueError(f"read_slots must be [{layers} layers, taps - 1], got shape {tuple(read_slots.shape)}")
    check_shape("write_slots", write_slots, (layers,))
    check_dtype("cache", cache, x.dtype, " like x")
    for name, slots in (("read_slots", read_slots), ("write_slots", write_slots)):
        check_integer_dtype(name, slots)
        check_slots(name, slots, cache.shape[0])
    past_taps = read_slots.shape[1]
    check_shape("weights.current", weights.current, (layers, groups, width, channels))
    check_shape("weights.past", weights.past, (layers, groups, width, past_taps * channels))
    check_shape("weights.bias", weights.bias, (layers, groups, width))
    if gate_bias is not None:
        check_shape("gate_bias", gate_bias, (layers, groups, batch, width))
    if activation == "relu":
        if width != channels:
            raise ValueError(f"a relu stack feeds each output to the next layer: R={width} must equal C={channels}")
        return
    if weights.skip is None or weights.skip.ndim != 2:
        raise ValueError(f"a gated stack needs weights.skip [skip channels, {layers} * {width}]")
    check_shape("weights.residual", weights.residual, (layers, channels, width))
    check_shape("weights.residual_bias", weights.residual_bias, (layers, channels))
    check_shape("weights.skip", weights.skip, (weights.skip.shape[0], layers * width))
    check_shape("weights.skip_bias", weights.skip_bias, (weights.skip.shape[0],))


def output_shape(x, weights: StackWeights, activation: str) -> tuple[int, int]:
    """[B, S] (gated: the skip sum) or [B, C] (relu: the last layer's output)."""
    return (x.shape[0], weights.skip.shape[0]) if activation == "gated" else tuple(x.shape)


def step_cost(x, cache, read_slots, weights: StackWeights, gate_bias, activation: str) -> tuple[int, int]:
    """(bytes, flops) one step must move and compute at least, for a roofline: any implementation reads every
    weight once, x, gate_bias and the L*(k-1) past rows [B, C] of the cache, and writes the L current rows and
    the output; the FLOPs are the matmuls' 2*B*(outputs)*(inputs): per layer G*R x k*C (taps), gated also C x R
    (residual, all layers but the last) and, over the stack, S x L*R (skip). Shapes only (arrays or
    ShapeDtypeStructs); the cache's other rows are neither read nor written (it is updated in place).
    """
    batch, channels = x.shape
    layers, groups, width, _ = weights.current.shape
    arrays = [w for w in weights if w is not None] + ([] if gate_bias is None else [gate_bias])
    read_once = sum(int(np.prod(a.shape)) * jnp.dtype(a.dtype).itemsize for a in arrays)
    past_rows = int(np.prod(read_slots.shape))
    output = output_shape(x, weights, activation)
    rows = batch * channels * (1 + past_rows + layers) + output[0] * output[1]  # x, past rows, written rows, out
    flops = 2 * batch * layers * groups * width * (past_rows // layers + 1) * channels
    if activation == "gated":
        flops += 2 * batch * (layers - 1) * channels * width + 2 * batch * output[1] * layers * width
    return read_once + rows * jnp.dtype(x.dtype).itemsize, flops


SMALL_BATCH = 4  # at or below it, `project` multiplies and reduces instead of calling a matmul


def project(x: jax.Array, w: jax.Array, spec: str) -> jax.Array:
    """einsum(spec, x, w) for a small per-layer product: x [..., B, K], weights w [..., N, K], K the one
    contracted axis, last in both (spec names the axes, e.g. "bc,grc->gbr").

    Up to SMALL_BATCH rows the product is a broadcast multiply and a sum over the contiguous last axis, which XLA
    on CPU fuses into one loop. As a dot_general each product is a library GEMV call whose fixed cost exceeds
    the work: measured on the 2-core CPU, 20 chained [1, 64] x [64, 64] products take about 40 us this way and
    140 us as dots. Only for short contractions: XLA fuses the producers of x into the loop and recomputes them
    per output, so the stack-wide products (past taps, skip sum) stay dots. Larger batches use the dot.
    """
    inputs, output = spec.split("->")
    x_axes, w_axes = inputs.split(",")
    if x.shape[-2] > SMALL_BATCH:
        return jnp.einsum(spec, x, w)
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
