"""Blocked local attention with halos (HaloNets, Vaswani et al. 2021) in pure jnp: the oracle and the XLA path.

Every b x b query block attends to the (b+2h) x (b+2h) memory around it. For a query at (y, x) and a key at
(y', x') of that memory:

  logit = q . k + q . rel_h[y' - y + b + h - 1] + q . rel_w[x' - x + b + h - 1]     (q already scaled)

Keys and values outside the image are zeros and stay in the softmax (the paper's unmasked border).
The work is laid out per block (queries [.., b, b, d], memories [.., M, M, d]) and done in a few einsums,
so keys and values are copied (M/b)^2 times, not once per pixel of a k x k window.
"""

import jax
import jax.numpy as jnp

from kernels.halo_attention import layout


def halo_attention_reference(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_h: jax.Array,
    rel_w: jax.Array,
    *,
    block_size: int,
    halo_size: int,
) -> jax.Array:
    """q, k, v [N, H, W, heads, d], rel_h, rel_w [2(b+h)-1, d] -> [N, H, W, heads, d].

    Logits and softmax in float32 whatever the input dtype; the weights are cast to v's dtype for the
    weighted sum (accumulated in float32), as the Pallas kernel does.
    """
    layout.check_inputs(q, k, v, rel_h, rel_w, block_size, halo_size)
    b, memory = block_size, block_size + 2 * halo_size
    precision = layout.matmul_precision(q.dtype)
    einsum = lambda spec, x, y: jnp.einsum(  # noqa: E731
        spec, x, y, precision=precision, preferred_element_type=jnp.float32
    )

    queries = layout.to_query_blocks(q, b)  # [N, Bh, Bw, g, b, b, d]
    keys = layout.to_memory_blocks(k, b, halo_size, memory)  # [N, Bh, Bw, g, M, M, d]
    values = layout.to_memory_blocks(v, b, halo_size, memory)
    row_table = layout.relative_table(rel_h, b, halo_size, b, memory).astype(q.dtype)  # [b, M, d]
    col_table = layout.relative_table(rel_w, b, halo_size, b, memory).astype(q.dtype)

    logits = einsum("...yxd,...jid->...yxji", queries, keys)  # [N, Bh, Bw, g, b, b, M, M]
    row_logits = einsum("...yxd,yjd->...yxj", queries, row_table)  # [N, Bh, Bw, g, b, b, M]
    col_logits = einsum("...yxd,xid->...yxi", queries, col_table)
    logits = logits + row_logits[..., :, None] + col_logits[..., None, :]
    logits = logits.reshape(*logits.shape[:-2], memory * memory)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    values = values.reshape(*values.shape[:-3], memory * memory, values.shape[-1])
    out = einsum("...yxo,...od->...yxd", weights, values).astype(q.dtype)
    return layout.from_query_blocks(out)


def random_inputs(seed, block, halo, batch, height, width, heads, depth, dtype=jnp.float32):
    """Fresh q (scaled by d^-1/2, as a caller would), k, v, rel_h, rel_w and an output cotangent: what the tests
    and benchmarks feed every implementation. Drawn in float32, then cast to dtype."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 6)
    shape = (batch, height, width, heads, depth)
    offsets = 2 * (block + halo) - 1
    q = jax.random.normal(keys[0], shape) * depth**-0.5
    k, v = (jax.random.normal(keys[i], shape) for i in (1, 2))
    rel_h, rel_w = (jax.random.normal(keys[i], (offsets, depth)) * depth**-0.5 for i in (3, 4))
    cotangent = jax.random.normal(keys[5], shape)
    return tuple(x.astype(dtype) for x in (q, k, v, rel_h, rel_w)), cotangent.astype(dtype)
