"""Random halo attention inputs, for the tests and for benchmarks/halo_attention_gpu.py (which imports this module
on a bare accelerator machine: jax only)."""

import jax
import jax.numpy as jnp


def halo_attention_inputs(key: jax.Array, sizes: tuple, dtype=jnp.float32, query_stride: int = 1) -> tuple:
    """sizes (block b, halo h, batch, H, W, heads, d) -> q (scaled by d^-1/2, as a caller would), k, v
    [batch, H, W, heads, d] and rel_h, rel_w [2(b+h)-1, d]; drawn in float32, then cast to dtype.
    query_stride 2: q holds a strided layer's kept queries only, [batch, H/2, W/2, heads, d] (even rows, columns)."""
    block, halo, batch, height, width, heads, depth = sizes
    keys = jax.random.split(key, 5)
    shape = (batch, height, width, heads, depth)
    offsets = 2 * (block + halo) - 1
    q = jax.random.normal(keys[0], shape) * depth**-0.5
    k, v = (jax.random.normal(keys[i], shape) for i in (1, 2))
    rel_h, rel_w = (jax.random.normal(keys[i], (offsets, depth)) * depth**-0.5 for i in (3, 4))
    q = q[:, ::query_stride, ::query_stride]
    return tuple(x.astype(dtype) for x in (q, k, v, rel_h, rel_w))
