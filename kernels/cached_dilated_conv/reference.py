"""One cached generation step of a stack of cached conv layers, in pure jnp: the oracle and the XLA path.

Layout, cells and equations: kernels/cached_dilated_conv/layout.py. The step reads every layer's past taps at once
(they were all written in earlier steps), adds their contribution for all layers in one batched matmul per conv,
then runs the layers in order (each needs the previous one's output), and writes all current inputs back in one
scatter. Per layer that leaves one [B, Cf] x [Cf, G*R] product per conv, the cell's unit, and for gated stacks one
[B, R] x [R, C] residual product; the skip outputs of all layers are one matmul at the end. The per-layer products
go through `layout.project` (a fused multiply-reduce at small batch, a dot above it).
"""

import functools

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
    cell: str = "gated",
) -> tuple[jax.Array, jax.Array]:
    """x [B, C] (layer 0's input at this step), cache [S, B, C], read_slots int [L, convs * (k-1)] (rows of each
    conv's past taps, oldest first, the first conv's then the second's), write_slots int [L] ([L, 2] for
    gated_resnet: rows that receive each conv's current input), gate_bias [L, G, B, R] or None -> (out, new
    cache): out is the skip sum [B, S] (gated), the last layer's output [B, C] (relu) or every layer's output
    [L, B, C] (gated_resnet).

    Contract (what a ring layout guarantees): no conv reads a row that another conv writes in the same step.
    Unchecked: the public `cached_dilated_conv_step` checks the inputs.
    """
    layers = read_slots.shape[0]
    taps = layout.past_taps(read_slots, cell)
    batch, channels = x.shape
    project = layout.project
    f = functools.partial(layout.input_map, cell)

    def past_products(slots, past, bias):  # every layer's past taps of one conv: [L, G, B, R]
        rows = f(read_rows(cache, slots).reshape(layers, taps, batch, channels))
        rows = rows.transpose(0, 2, 1, 3).reshape(layers, batch, -1)
        return jnp.einsum("lbi,lgri->lgbr", rows, past) + bias[:, :, None, :]

    pre = past_products(read_slots[:, :taps], weights.past, weights.bias)
    if gate_bias is not None:
        pre = pre + gate_bias
    if cell == "gated_resnet":
        pre_out = past_products(read_slots[:, taps:], weights.out_past, weights.out_bias)
    written, gated, outputs = [], [], []
    for layer in range(layers):
        written.append(x)
        a = pre[layer] + project(f(x), weights.current[layer], "bc,grc->gbr")  # [G, B, R]
        if cell == "relu":
            x = jax.nn.relu(a[0])
            continue
        if cell == "gated_resnet":
            hidden = a[0]
            written.append(hidden)
            a = pre_out[layer] + project(f(hidden), weights.out_current[layer], "bc,grc->gbr")
            x = x + a[0] * jax.nn.sigmoid(a[1])
            outputs.append(x)
            continue
        z = jnp.tanh(a[0]) * jax.nn.sigmoid(a[1])
        gated.append(z)
        if layer + 1 < layers:  # the last layer's residual output feeds nothing
            x = x + project(z, weights.residual[layer], "br,cr->bc") + weights.residual_bias[layer]
    rows = write_slots.reshape(-1)  # layer-major, a layer's convs in order: as `written`
    cache = cache.at[rows].set(jnp.stack(written), mode="promise_in_bounds", unique_indices=True)
    if cell == "relu":
        return x, cache
    if cell == "gated_resnet":
        return jnp.stack(outputs), cache
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
