"""Stand-alone local self-attention (Ramachandran et al. 2019), a drop-in `spatial_layer` for the ResNet.

Every pixel (i, j) attends to the k x k window centred on it. Per head, with q = W_Q x_ij, k = W_K x_ab,
v = W_V x_ab (1x1 projections, no bias):

  logit(ij, ab) = q_ij . k_ab + q_ij . r(a - i, b - j),   r(da, db) = concat(r_row[da], r_col[db])
  y_ij = sum_ab softmax_ab(logit) v_ab

Choices this file makes where the paper is silent (the README lists them too):
  * Borders: the window is zero padded, and the padded keys are masked out of the softmax, so a pixel near the
    border attends only to in-image pixels (a zero key would otherwise still get weight exp(q . r)).
  * Scale: q is multiplied by 1/sqrt(d_head), as in the Transformer; it keeps the initial logits O(1).
  * The relative tables r_row [k, d_head/2] and r_col [k, d_head/2] are shared by the heads; they enter the logits
    only, never the values.
  * Stride 2: the attention runs at full resolution, then a 2x2 average pool with stride 2 (the paper's rule;
    odd sizes round up, the pool averaging only in-image pixels).

Positional encodings (`positional`, the paper's ablation "none / absolute / relative"):
  * "relative" (the default, the paper's layer): the q . r(a - i, b - j) term above.
  * "absolute": an embedding of the key's absolute position in the feature map is added to the key,
    k_ab + e(a, b) with e(a, b) = concat(e_row[a], e_col[b]) (factorised like the relative tables, shared by the
    heads, one row/column entry per position up to `max_positions`), so logit = q_ij . (k_ab + e(a, b)).
    The paper gives no formula for its absolute variant; this is the Transformer's additive embedding, applied
    where the relative term would be (the logits, not the values), so the three options differ only in it.
  * "none": q_ij . k_ab only; each output then depends on its window's pixels but not on where they lie in it.

Two implementations compute the same function:
  * `blockwise_local_attention` (the default): the map is cut into b x b query blocks; each block attends to its
    (b+k-1)^2 haloed memory block with a mask that leaves each query its own k x k window. Keys and values are
    held about (b+k-1)^2/b^2 times, not k^2 times as with a per-pixel unfold. b defaults to `default_block_size`
    (4 at k = 7 on maps over 8x8; one block of the whole map up to 8x8).
  * `naive_local_attention`: the explicit per-pixel unfold of keys, values and the full k x k relative table; the
    test oracle, and the formulation whose FLOPs the paper counts (`--dry_run` counts this one).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.nn.activations import make_activation
from common.registry import lookup

MASKED_LOGIT = -1e30  # finite, so a query that sees only padding (outside the image, later cropped) stays NaN-free


def _check_kernel_size(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive so the window has a centre, got {kernel_size}")


def full_relative_table(rel_row: jax.Array, rel_col: jax.Array) -> jax.Array:
    """r_row [k, d/2], r_col [k, d/2] -> r [k, k, d] with r[a, b] = concat(r_row[a], r_col[b])."""
    k = rel_row.shape[0]
    rows = jnp.broadcast_to(rel_row[:, None, :], (k, k, rel_row.shape[-1]))
    cols = jnp.broadcast_to(rel_col[None, :, :], (k, k, rel_col.shape[-1]))
    return jnp.concatenate([rows, cols], axis=-1)


def absolute_position_table(abs_row: jax.Array, abs_col: jax.Array, height: int, width: int) -> jax.Array:
    """e_row [P, d/2], e_col [P, d/2] -> e [height, width, d] with e[a, b] = concat(e_row[a], e_col[b])."""
    if height > abs_row.shape[0] or width > abs_col.shape[0]:
        raise ValueError(
            f"a {height}x{width} map needs absolute positions beyond the {abs_row.shape[0]}x{abs_col.shape[0]} "
            "tables; raise max_positions"
        )
    rows = jnp.broadcast_to(abs_row[:height, None, :], (height, width, abs_row.shape[-1]))
    cols = jnp.broadcast_to(abs_col[None, :width, :], (height, width, abs_col.shape[-1]))
    return jnp.concatenate([rows, cols], axis=-1)


def _add_absolute_positions(k: jax.Array, abs_row: jax.Array | None, abs_col: jax.Array | None) -> jax.Array:
    """k [N, H, W, heads, d] + e(a, b) (shared by the heads); unchanged when there are no absolute tables."""
    if abs_row is None:
        return k
    table = absolute_position_table(abs_row, abs_col, k.shape[1], k.shape[2])
    return k + table[None, :, :, None, :].astype(k.dtype)


def naive_local_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_row: jax.Array | None,
    rel_col: jax.Array | None,
    *,
    kernel_size: int,
    abs_row: jax.Array | None = None,
    abs_col: jax.Array | None = None,
) -> jax.Array:
    """Per-pixel reference: q, k [N, H, W, heads, d] (q already scaled), v [N, H, W, heads, dv] -> like v.

    Unfolds the k x k neighbourhood of every pixel (k^2 copies of keys and values) and masks padded keys.
    Relative tables None: no q . r term; absolute tables [P, d/2] given: e(a, b) is added to the keys.
    """
    _check_kernel_size(kernel_size)
    k = _add_absolute_positions(k, abs_row, abs_col)
    n, h, w, heads, d = q.shape
    pad = kernel_size // 2
    spatial_pad = ((0, 0), (pad, pad), (pad, pad), (0, 0), (0, 0))
    k_padded, v_padded = jnp.pad(k, spatial_pad), jnp.pad(v, spatial_pad)
    inside = jnp.pad(jnp.ones((h, w), bool), pad)
    offsets = [(a, b) for a in range(kernel_size) for b in range(kernel_size)]
    k_windows = jnp.stack([k_padded[:, a : a + h, b : b + w] for a, b in offsets], axis=3)  # [N,H,W,k*k,heads,d]
    v_windows = jnp.stack([v_padded[:, a : a + h, b : b + w] for a, b in offsets], axis=3)
    valid = jnp.stack([inside[a : a + h, b : b + w] for a, b in offsets], axis=-1)  # [H, W, k*k]
    logits = jnp.einsum("nhwgd,nhwogd->nhwgo", q, k_windows)
    if rel_row is not None:
        relative = full_relative_table(rel_row, rel_col).reshape(kernel_size * kernel_size, d)
        logits = logits + jnp.einsum("nhwgd,od->nhwgo", q, relative)
    logits = jnp.where(valid[None, :, :, None, :], logits, MASKED_LOGIT)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    return jnp.einsum("nhwgo,nhwogd->nhwgd", weights, v_windows)


def _haloed_blocks(x: jax.Array, axis: int, num_blocks: int, block_size: int, memory_size: int) -> jax.Array:
    """Splits `axis` (length >= num_blocks * block_size + halo) into overlapping windows of `memory_size`.

    The result has the block index at `axis` and the position in the window at `axis + 1`.
    """
    index = np.arange(num_blocks)[:, None] * block_size + np.arange(memory_size)[None, :]
    return jnp.take(x, jnp.asarray(index), axis=axis)


def _offset_one_hot(block_size: int, kernel_size: int) -> np.ndarray:
    """[b, b+k-1, k]: 1 where memory position m lies at window offset o of query position x (m - x == o)."""
    memory_size = block_size + kernel_size - 1
    offset = np.arange(memory_size)[None, :] - np.arange(block_size)[:, None]
    return (offset[:, :, None] == np.arange(kernel_size)[None, None, :]).astype(np.float32)


def default_block_size(kernel_size: int, height: int, width: int) -> int:
    """The query block edge b used when none is given: one block if the map fits 8x8, else max(4, (k+1)//2).

    A block holds (b+k-1)^2 logits per query (heads x that, in float32, forward and backward): with b = 8 and
    k = 7 that is 4x the k^2 of the window, and at 56x56x64 those logits, not the keys and values, fill most of
    the memory (only 2.2x less than the unfold). b = (k+1)//2 keeps them about 2x the window's (b = 4 at k = 7,
    3.5x less memory than the unfold at 56x56x64, and still faster), while keys and values are held
    (b+k-1)^2/b^2 = 6x instead of k^2 = 49x. Maps up to 8x8 (the last stages) are one block of the map's size:
    no padded queries at all (7x7x512: 16x less memory than the unfold). benchmarks/local_attention.py measures it.
    """
    _check_kernel_size(kernel_size)
    if max(height, width) <= 8:
        return max(height, width)
    return max(4, (kernel_size + 1) // 2)


def blockwise_local_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_row: jax.Array | None,
    rel_col: jax.Array | None,
    *,
    kernel_size: int,
    block_size: int | None = None,
    abs_row: jax.Array | None = None,
    abs_col: jax.Array | None = None,
) -> jax.Array:
    """Same function as `naive_local_attention`, per b x b query block: q, k [N, H, W, heads, d], v [..., dv].

    H and W need not divide by `block_size`: the map is padded up to whole blocks and the padding cropped off.
    `block_size=None` picks it with `default_block_size`.
    """
    _check_kernel_size(kernel_size)
    k = _add_absolute_positions(k, abs_row, abs_col)
    if block_size is None:
        block_size = default_block_size(kernel_size, q.shape[1], q.shape[2])
    n, h, w, heads, d = q.shape
    pad, b = kernel_size // 2, block_size
    blocks_h, blocks_w = -(-h // b), -(-w // b)
    extra_h, extra_w = blocks_h * b - h, blocks_w * b - w
    memory = b + kernel_size - 1

    q = jnp.pad(q, ((0, 0), (0, extra_h), (0, extra_w), (0, 0), (0, 0)))
    q = q.reshape(n, blocks_h, b, blocks_w, b, heads, d).transpose(0, 1, 3, 5, 2, 4, 6)  # [N,Bh,Bw,g,b,b,d]

    kv_pad = ((0, 0), (pad, pad + extra_h), (pad, pad + extra_w), (0, 0), (0, 0))
    inside = jnp.pad(jnp.ones((h, w), bool), ((pad, pad + extra_h), (pad, pad + extra_w)))

    def to_memory_blocks(t):  # [N, Hp+k-1, Wp+k-1, g, d] -> [N, Bh, Bw, g, M, M, d]
        t = _haloed_blocks(jnp.pad(t, kv_pad), 1, blocks_h, b, memory)
        t = _haloed_blocks(t, 3, blocks_w, b, memory)
        return t.transpose(0, 1, 3, 5, 2, 4, 6)

    k_blocks, v_blocks = to_memory_blocks(k), to_memory_blocks(v)
    valid = _haloed_blocks(_haloed_blocks(inside, 0, blocks_h, b, memory), 2, blocks_w, b, memory)
    valid = valid.transpose(0, 2, 1, 3)  # [Bh, Bw, M, M]

    one_hot = jnp.asarray(_offset_one_hot(b, kernel_size), q.dtype)  # [b, M, k]
    logits = jnp.einsum("...xyd,...mpd->...xymp", q, k_blocks)  # [N,Bh,Bw,g,b,b,M,M]
    if rel_row is not None:
        half = rel_row.shape[-1]
        row_logits = jnp.einsum("...xyc,oc->...xyo", q[..., :half], rel_row.astype(q.dtype))
        row_logits = jnp.einsum("...xyo,xmo->...xym", row_logits, one_hot)  # [N,Bh,Bw,g,b,b,M]
        col_logits = jnp.einsum("...xyc,oc->...xyo", q[..., half:], rel_col.astype(q.dtype))
        col_logits = jnp.einsum("...xyo,ymo->...xym", col_logits, one_hot)
        logits = logits + row_logits[..., :, None] + col_logits[..., None, :]

    in_window = one_hot.sum(-1).astype(bool)  # [b, M]: memory row m is within query row x's window
    window = in_window[:, None, :, None] & in_window[None, :, None, :]  # [b, b, M, M]
    mask = window[None, None] & valid[:, :, None, None, :, :]  # [Bh, Bw, b, b, M, M]
    logits = jnp.where(mask[None, :, :, None], logits, MASKED_LOGIT)
    logits = logits.reshape(*logits.shape[:-2], memory * memory)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum("...xyo,...od->...xyd", weights, v_blocks.reshape(*v_blocks.shape[:-3], memory * memory, -1))
    out = out.transpose(0, 1, 4, 2, 5, 3, 6).reshape(n, blocks_h * b, blocks_w * b, heads, v.shape[-1])
    return out[:, :h, :w]


def average_pool_2x2(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]; an odd edge averages only its in-image pixels."""
    extra_h, extra_w = x.shape[1] % 2, x.shape[2] % 2
    if extra_h or extra_w:
        ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
        padding = ((0, 0), (0, extra_h), (0, extra_w), (0, 0))
        totals = _sum_pool_2x2(jnp.pad(x, padding))
        return totals / _sum_pool_2x2(jnp.pad(ones, padding))
    return _sum_pool_2x2(x) / 4


def _sum_pool_2x2(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).sum(axis=(2, 4))


IMPLEMENTATIONS = {"blockwise": blockwise_local_attention, "naive": naive_local_attention}
# name -> what it adds (LocalSelfAttention's `positional`)
POSITIONAL_ENCODINGS = {
    "relative": "row and column offset embeddings, dotted with the query",
    "absolute": "row and column position embeddings added to the keys",
    "none": "no position term",
}


class LocalSelfAttention(nnx.Module):
    """Multi-head k x k local self-attention; [N,H,W,Cin] -> [N,H/s,W/s,Cout].

    Parameters: 3 * Cin * Cout for the projections plus the position tables, shared by the heads:
    `positional="relative"` two [k, d_head/2] tables (only they depend on k), `"absolute"` two
    [max_positions, d_head/2] tables, `"none"` nothing. `implementation` picks the kernel ("blockwise" or
    "naive"), not the function; `block_size=None` lets `default_block_size` pick the query block per map.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        kernel_size: int = 7,
        num_heads: int = 8,
        stride: int = 1,
        block_size: int | None = None,
        implementation: str = "blockwise",
        positional: str = "relative",
        max_positions: int = 64,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        _check_kernel_size(kernel_size)
        if out_features % num_heads or (out_features // num_heads) % 2:
            raise ValueError(
                f"out_features={out_features} must split into {num_heads} heads of an even size (row/column halves)"
            )
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        lookup(IMPLEMENTATIONS, implementation, "implementation")
        lookup(POSITIONAL_ENCODINGS, positional, "positional encoding")
        if block_size is not None and block_size < 1:
            raise ValueError(f"block_size must be positive or None, got {block_size}")
        self.kernel_size, self.num_heads, self.stride = kernel_size, num_heads, stride
        self.block_size, self.implementation, self.dtype = block_size, implementation, dtype
        self.positional = positional
        self.head_features = out_features // num_heads

        def projection():
            return nnx.Linear(in_features, out_features, use_bias=False, dtype=dtype, rngs=rngs)

        self.query, self.key, self.value = projection(), projection(), projection()
        table_init = nnx.initializers.normal(stddev=self.head_features**-0.5)
        half = self.head_features // 2
        if positional == "relative":
            self.rel_row = nnx.Param(table_init(rngs.params(), (kernel_size, half)))
            self.rel_col = nnx.Param(table_init(rngs.params(), (kernel_size, half)))
        elif positional == "absolute":
            self.abs_row = nnx.Param(table_init(rngs.params(), (max_positions, half)))
            self.abs_col = nnx.Param(table_init(rngs.params(), (max_positions, half)))

    def position_tables(self) -> dict[str, jax.Array | None]:
        """The kernels' position arguments: relative tables (or None) and absolute tables (or absent)."""
        if self.positional == "relative":
            return {"rel_row": self.rel_row.value, "rel_col": self.rel_col.value}
        if self.positional == "absolute":
            return {"rel_row": None, "rel_col": None, "abs_row": self.abs_row.value, "abs_col": self.abs_col.value}
        return {"rel_row": None, "rel_col": None}

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, ceil(H/stride), ceil(W/stride), out_features]."""
        n, h, w, _ = x.shape

        def heads(t):
            return t.reshape(n, h, w, self.num_heads, self.head_features)

        q = heads(self.query(x)) * (self.head_features**-0.5)
        k, v = heads(self.key(x)), heads(self.value(x))
        kwargs = {"block_size": self.block_size} if self.implementation == "blockwise" else {}
        out = IMPLEMENTATIONS[self.implementation](
            q, k, v, kernel_size=self.kernel_size, **self.position_tables(), **kwargs
        )
        out = out.reshape(n, h, w, self.num_heads * self.head_features)
        return average_pool_2x2(out) if self.stride == 2 else out


def local_attention_layer(
    kernel_size: int = 7,
    num_heads: int = 8,
    *,
    block_size: int | None = None,
    implementation: str = "blockwise",
    positional: str = "relative",
    max_positions: int = 64,
    dtype: Any = None,
):
    """A ResNet `SpatialLayerFactory` that builds `LocalSelfAttention` with these settings."""

    def make(in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> LocalSelfAttention:
        return LocalSelfAttention(
            in_features,
            out_features,
            kernel_size=kernel_size,
            num_heads=num_heads,
            stride=stride,
            block_size=block_size,
            implementation=implementation,
            positional=positional,
            max_positions=max_positions,
            dtype=dtype,
            rngs=rngs,
        )

    return make


class AttentionStem(nnx.Module):
    """The paper's attention stem: attention within 4x4 blocks with spatially aware values, BN, act, 4x4 max pool.

    Inside each non-overlapping 4x4 block every pixel attends (logits q . k, 4 heads) to the block's pixels; the
    values are v_ab = (sum_m p(a,b,m) W_V^m) x_ab with p(a,b,m) = softmax_m((e_row[a] + e_col[b]) . nu_m), absolute
    row/column embeddings of the position in the block, shared by the heads. Output stride 4 like the conv stem.
    Guessed (not in the paper): m = 4 value mixtures, embedding size 64, an activation after the BN (as in the
    conv stem), non-overlapping blocks, padded pixels masked out, q scaled by 1/sqrt(d_head).
    """

    num_stages = 4
    block = 4
    num_heads = 4
    num_mixtures = 4
    embedding_features = 64

    def __init__(self, in_features: int, width: int, options: Any, *, rngs: nnx.Rngs):
        if width % self.num_heads:
            raise ValueError(f"stem width {width} must divide into {self.num_heads} heads")
        self.dtype = options.dtype
        self.width = width
        self.query = nnx.Linear(in_features, width, use_bias=False, dtype=options.dtype, rngs=rngs)
        self.key = nnx.Linear(in_features, width, use_bias=False, dtype=options.dtype, rngs=rngs)
        value_init = nnx.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=0)
        self.value_mixtures = nnx.Param(value_init(rngs.params(), (self.num_mixtures, in_features, width)))
        embedding_init = nnx.initializers.normal(stddev=1.0)
        shape = (self.block, self.embedding_features)
        self.embedding_row = nnx.Param(embedding_init(rngs.params(), shape))
        self.embedding_col = nnx.Param(embedding_init(rngs.params(), shape))
        self.mixture_logit_weights = nnx.Param(
            embedding_init(rngs.params(), (self.num_mixtures, self.embedding_features)) / self.embedding_features**0.5
        )
        self.norm = nnx.BatchNorm(width, momentum=options.bn_momentum, epsilon=1e-5, dtype=options.dtype, rngs=rngs)
        self.act = make_activation(options.activation, width, rngs=rngs)

    def value_weights(self) -> jax.Array:
        """[4, 4, in_features, width]: the value projection of each position in a block."""
        position = self.embedding_row.value[:, None, :] + self.embedding_col.value[None, :, :]  # [4, 4, E]
        mixture = jax.nn.softmax(jnp.einsum("abe,me->abm", position, self.mixture_logit_weights.value), axis=-1)
        return jnp.einsum("abm,mic->abic", mixture, self.value_mixtures.value)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, ceil(H/4), ceil(W/4), width]."""
        n, h, w, c = x.shape
        s, g, d = self.block, self.num_heads, self.width // self.num_heads
        blocks_h, blocks_w = -(-h // s), -(-w // s)
        padding = ((0, 0), (0, blocks_h * s - h), (0, blocks_w * s - w), (0, 0))
        blocks = jnp.pad(x, padding).reshape(n, blocks_h, s, blocks_w, s, c).transpose(0, 1, 3, 2, 4, 5)
        valid = jnp.pad(jnp.ones((h, w), bool), padding[1:3]).reshape(blocks_h, s, blocks_w, s).transpose(0, 2, 1, 3)

        q = self.query(blocks).reshape(n, blocks_h, blocks_w, s * s, g, d) * d**-0.5
        k = self.key(blocks).reshape(n, blocks_h, blocks_w, s * s, g, d)
        v = jnp.einsum("nhwabi,abic->nhwabc", blocks, self.value_weights().astype(blocks.dtype))
        v = v.reshape(n, blocks_h, blocks_w, s * s, g, d)
        logits = jnp.einsum("nhwqgd,nhwkgd->nhwgqk", q, k)
        key_valid = valid.reshape(blocks_h, blocks_w, 1, 1, s * s)
        logits = jnp.where(key_valid[None], logits, MASKED_LOGIT)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("nhwgqk,nhwkgd->nhwqgd", weights, v).reshape(n, blocks_h, blocks_w, s, s, self.width)
        out = out.transpose(0, 1, 3, 2, 4, 5).reshape(n, blocks_h * s, blocks_w * s, self.width)[:, :h, :w]
        out = self.act(self.norm(out))
        return nnx.max_pool(out, (s, s), strides=(s, s), padding="SAME")


def attention_param_count(
    in_features: int,
    out_features: int,
    kernel_size: int,
    num_heads: int,
    positional: str = "relative",
    max_positions: int = 64,
) -> int:
    """What LocalSelfAttention holds: three projections and the position tables ([k or P, d_head/2] each)."""
    table_rows = {"relative": kernel_size, "absolute": max_positions, "none": 0}[positional]
    return 3 * in_features * out_features + table_rows * (out_features // num_heads)


__all__ = [
    "AttentionStem",
    "LocalSelfAttention",
    "POSITIONAL_ENCODINGS",
    "absolute_position_table",
    "attention_param_count",
    "blockwise_local_attention",
    "default_block_size",
    "full_relative_table",
    "local_attention_layer",
    "naive_local_attention",
]
