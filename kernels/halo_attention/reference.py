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
    precision: str = "highest",
) -> jax.Array:
    """q [N, H/s, W/s, heads, d], k [N, H, W, heads, d], v [N, H, W, heads, dv], rel_h, rel_w [2(b+h)-1, d]
    -> [N, H/s, W/s, heads, dv]; s = 1, or s = 2 for the kept queries (even rows and columns) of a strided layer.

    The inputs are those `layout.check_inputs` accepts (the public `halo_attention` checks them; this path does
    not). Kept query (i, j) gets exactly what the full-resolution query (2i, 2j) gets: same block, same (b+2h)^2
    memory, same relative offsets, zeros outside the image not masked. The work runs on output blocks of b/s
    queries over the memories of the b x b input blocks, so no discarded or padded work is done. Logits and
    softmax in float32 whatever the input dtype; the weights are cast to v's dtype for the weighted sum
    (accumulated in float32), as the Pallas kernel does. precision: "highest" | "default" for float32 dots
    (layout.matmul_precision).
    """
    b, memory = block_size, block_size + 2 * halo_size
    stride = k.shape[1] // q.shape[1]
    precision = layout.matmul_precision(q.dtype, precision)

    def einsum(spec, x, y):
        return jnp.einsum(spec, x, y, precision=precision, preferred_element_type=jnp.float32)

    queries = layout.to_query_blocks(q, b // stride)  # [N, H/b, W/b, g, b/s, b/s, d]
    keys = layout.to_memory_blocks(k, b, halo_size, memory)  # [N, H/b, W/b, g, M, M, d]
    values = layout.to_memory_blocks(v, b, halo_size, memory)
    # Kept query row y' sits at in-block row s*y' of the full-resolution block: every s-th row of the tables.
    row_table = layout.relative_table(rel_h, b, halo_size, b, memory)[::stride].astype(q.dtype)  # [b/s, M, d]
    col_table = layout.relative_table(rel_w, b, halo_size, b, memory)[::stride].astype(q.dtype)

    logits = einsum("...yxd,...jid->...yxji", queries, keys)  # [N, H/b, W/b, g, b/s, b/s, M, M]
    row_logits = einsum("...yxd,yjd->...yxj", queries, row_table)
    col_logits = einsum("...yxd,xid->...yxi", queries, col_table)
    logits = logits + row_logits[..., :, None] + col_logits[..., None, :]
    logits = logits.reshape(*logits.shape[:-2], memory * memory)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    values = values.reshape(*values.shape[:-3], memory * memory, v.shape[-1])
    out = einsum("...yxo,...od->...yxd", weights, values).astype(v.dtype)
    return layout.from_query_blocks(out)
