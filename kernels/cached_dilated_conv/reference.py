"""One cached generation step of a stack of causal dilated conv layers, in pure jnp: the oracle and the XLA path.

Layout and equations: kernels/cached_dilated_conv/layout.py. The step reads every layer's past taps at once
(they were all written in earlier steps), adds their contribution for all layers in one batched
matmul, then runs the layers in order (each needs the previous one's output), and writes all layers' current
inputs back in one scatter. Per layer that leaves one [B, C] x [C, G*R] product, the activation, and for gated
stacks one [B, R] x [R, C] residual product; the skip outputs of all layers are one matmul at the end. The
per-layer products go through `layout.project` (a fused multiply-reduce at small batch, a dot above it).
"""

import jax
import jax.numpy as jnp

from kernels.cached_dilated_conv import layout
from kernels.cached_dilated_conv.layout import StackWeights


def cached_dilated_conv_step_reference(
    x: jax.Array,
    cache: jax.Array,
    read_slots: jax.Array,
    write_slots: jax.Array,
    weights: StackWeights,
    gate_bias: jax.Array | None = None,
    *,
    activation: str = "gated",
) -> tuple[jax.Array, jax.Array]:
    """x [B, C] (layer 0's input at this step), cache [S, B, C], read_slots int [L, k-1] (rows of the past taps,
    oldest first), write_slots int [L] (rows that receive each layer's current input), gate_bias [L, G, B, R] or
    None -> (out, new cache): out is the skip sum [B, S] (gated) or the last layer's output [B, C] (relu).

    Contract (what a ring layout guarantees): no layer reads a row that another layer writes in the same step.
    Unchecked: the public `cached_dilated_conv_step` checks the inputs.
    """
    layers, past_taps = read_slots.shape
    batch, channels = x.shape
    project = layout.project
    taps = read_rows(cache, read_slots).reshape(layers, past_taps, batch, channels)
    taps = taps.transpose(0, 2, 1, 3).reshape(layers, batch, past_taps * channels)
    pre = jnp.einsum("lbi,lgri->lgbr", taps, weights.past) + weights.bias[:, :, None, :]
    if gate_bias is not None:
        pre = pre + gate_bias
    inputs, gated = [], []
    for layer in range(layers):
        inputs.append(x)
        a = pre[layer] + project(x, weights.current[layer], "bc,grc->gbr")  # [G, B, R]
        if activation == "relu":
            x = jax.nn.relu(a[0])
            continue
        z = jnp.tanh(a[0]) * jax.nn.sigmoid(a[1])
        gated.append(z)
        if layer + 1 < layers:  # the last layer's residual output feeds nothing
            x = x + project(z, weights.residual[layer], "br,cr->bc") + weights.residual_bias[layer]
    cache = cache.at[write_slots].set(jnp.stack(inputs), mode="promise_in_bounds", unique_indices=True)
    if activation == "relu":
        return x, cache
    gated = jnp.stack(gated, axis=1).reshape(batch, -1)  # [B, L*R], layer-major like weights.skip's columns
    return jnp.einsum("bk,sk->bs", gated, weights.skip) + weights.skip_bias, cache


def read_rows(cache: jax.Array, slots: jax.Array) -> jax.Array:
    """cache [S, B, C], slots int [...] -> [prod(...), B, C] as one dynamic slice per row.

    Not a gather: XLA on CPU runs a gather of 20 rows as a loop that costs more (about 35 us measured) than the
    20 layers' matmuls; stacked dynamic slices fuse into one copy of the rows.
    """
    _, batch, channels = cache.shape
    rows = [jax.lax.dynamic_slice(cache, (slot, 0, 0), (1, batch, channels)) for slot in slots.reshape(-1)]
    return jnp.concatenate(rows)
