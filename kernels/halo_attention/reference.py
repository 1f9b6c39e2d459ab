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
    return halo_attention_xla(q, k, v, rel_h, rel_w, block_size=block_size, halo_size=halo_size)


def halo_attention_xla(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_h: jax.Array,
    rel_w: jax.Array,
    *,
    block_size: int,
    halo_size: int,
) -> jax.Array:
    """Halo attention in pure jnp, generalised to kept queries and to q/k narrower or wider than v.

    q [N, H/s, W/s, heads, d] with s = 1, or s = 2 for the kept queries (even rows and columns) of a strided
    layer; k [N, H, W, heads, d], v [N, H, W, heads, dv]; rel_h, rel_w [2(b+h)-1, d] -> [N, H/s, W/s, heads, dv].
    H and W are multiples of b (an even b when s = 2). Kept query (i, j) gets exactly what the kernel's
    `halo_attention` gives the full-resolution query (2i, 2j): same block, same (b+2h)^2 memory, same relative
    offsets, zeros outside the image not masked. The work runs on output blocks of b/s
    queries over the memories of the b x b input blocks, so no discarded or padded work is done.
    """
    b, memory = block_size, block_size + 2 * halo_size
    n, height, width, heads, depth = k.shape
    if b < 1 or halo_size < 0:
        raise ValueError(f"need block_size >= 1 and halo_size >= 0, got {block_size}, {halo_size}")
    if height % b or width % b:
        raise ValueError(f"H={height} and W={width} must be multiples of block_size={b}")
    if v.shape[:4] != k.shape[:4]:
        raise ValueError(f"v must be [N, H, W, heads, dv] like k {k.shape[:4]}, got {v.shape}")
    stride = height // q.shape[1] if q.shape[1] else 0
    if stride not in (1, 2) or q.shape != (n, height // stride, width // stride, heads, depth):
        raise ValueError(f"q must be k's shape {k.shape} or [N, H/2, W/2, heads, d], got {q.shape}")
    if stride == 2 and b % 2:
        raise ValueError(f"kept queries need an even block_size, got {b}")
    expected = (layout.num_offsets(b, halo_size), depth)
    if rel_h.shape != expected or rel_w.shape != expected:
        raise ValueError(f"rel_h and rel_w must be {expected}, got {rel_h.shape} and {rel_w.shape}")
    precision = layout.matmul_precision(q.dtype)

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
