"""Halo attention as Pallas kernels: one program per (image, head, query block), a small dense attention.

A HaloNet block has b^2 = 64 queries and (b+2h)^2 = 196 keys (b = 8, h = 3): far below the 128-key tiles of
flash attention, so each program holds the whole [queries, keys] logit tile, softmaxes it and writes its
output; the backward pass recomputes the tile from the saved log-sum-exp. The grid is batch x heads x blocks.

Layout (built by XLA around the kernels, differentiable like any jnp code):
  queries  [N, g, Bh, Bw, Qp, Dp]  one row per query of the block (query (y, x) at y*b + x), Qp >= b^2
  keys     [N, g, Hp, Wp_img, Dp]  the image zero padded by h (and a little more at the end), heads first;
                                    each program reads its own Wn x Wn window at (by*b, bx*b) straight from it,
                                    so the overlapping memories are never copied out (key (j, i) at j*Wn + i)
  tables   [Bp*Wn, Dp]             rel_h / rel_w gathered by (query row, window row), see layout.relative_table
Every tile edge is a power of two (Triton needs it) and at least `KernelConfig.min_tile` (tensor-core dots need
16 on GPU): Wn >= M = b + 2h is the padded window, and keys past M are masked; padded queries and channels are
zeros and are cropped. Keys outside the image are real zeros of the window and are not masked, as in the
reference. The backward pass writes dk, dv per window ([N, g, Bh, Bw, Wn*Wn, Dp]); XLA adds the overlapping
windows back onto the image.

Relative logits inside the kernel: a = q @ table^T is [Qp, Bp*Wn]; viewing it as [Qp, Bp, Wn] and keeping, for
each query, the slice of its own row y gives r[q, j] = q . rel_h[j - y + b - 1]; the logit tile viewed as
[Qp, Wn, Wn] then takes r[:, :, None] (rows) and the column term [:, None, :]. The backward pass sums dS over
window columns / rows to get dr, adds dr @ table to dq, and returns dr itself so the table gradient (a sum over
all programs) is one einsum in XLA.

Backend choice lives in `kernels.backend.Launch` (Triton on GPU, Mosaic on TPU, the interpreter
elsewhere); the kernel source is the same everywhere and uses only ref indexing (`x_ref[...]`,
`x_ref[pl.ds(...)]`), which JAX 0.4.34 and 0.11 share.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.backend import Launch, resolve_launch
from kernels.base import KernelConfig
from kernels.halo_attention import layout

MASKED_LOGIT = -1e30  # padded keys; finite so exp(MASKED - max) is an exact 0 without inf arithmetic


def _pow2(n: int, minimum: int = 1) -> int:
    return max(minimum, 1 << max(0, (n - 1).bit_length()))


@dataclasses.dataclass(frozen=True)
class _Dims:
    """Static sizes of one launch (hashable: it is the non-differentiable argument of the custom VJP)."""

    block: int  # b
    halo: int  # h
    blocks_h: int  # H / b
    blocks_w: int  # W / b
    window: int  # Wn >= M, the padded memory edge
    rows: int  # Bp >= b, the padded query-row count of the relative tables
    queries: int  # Qp >= b^2
    depth: int  # Dp >= d
    launch: Launch

    @property
    def memory(self) -> int:
        return self.block + 2 * self.halo

    @property
    def keys(self) -> int:
        return self.window * self.window

    @property
    def image_shape(self) -> tuple[int, int]:
        """The padded key image: every window (by*b .. by*b + Wn) lies inside it."""
        return ((self.blocks_h - 1) * self.block + self.window, (self.blocks_w - 1) * self.block + self.window)


def _dims(q_shape, block_size, halo_size, launch: Launch) -> _Dims:
    m = launch.config.min_tile
    _, height, width, _, depth = q_shape
    window = _pow2(block_size + 2 * halo_size)
    while window * window < m:
        window *= 2
    return _Dims(
        block=block_size,
        halo=halo_size,
        blocks_h=height // block_size,
        blocks_w=width // block_size,
        window=window,
        rows=_pow2(block_size, -(-m // window)),
        queries=_pow2(block_size * block_size, m),
        depth=_pow2(depth, m),
        launch=launch,
    )


# ---------------------------------------------------------------------------------------------------- kernel body


def _dot(a, b, contract, precision):
    """2-D dot_general with float32 accumulation; contract = ((a_dim,), (b_dim,)) (Triton takes no batch dims)."""
    return jax.lax.dot_general(a, b, (contract, ((), ())), precision=precision, preferred_element_type=jnp.float32)


_NT, _NN, _TN = ((1,), (1,)), ((1,), (0,)), ((0,), (0,))


def _query_positions(dims: _Dims, axis: int):
    """[Qp, Bp, Wn] int32: each query's in-block row (axis 0) or column (axis 1); padded queries get rows >= b."""
    shape = (dims.queries, dims.rows, dims.window)
    index = jax.lax.broadcasted_iota(jnp.int32, shape, 0)
    if axis == 0:
        return jax.lax.div(index, jnp.int32(dims.block))
    return jax.lax.rem(index, jnp.int32(dims.block))


def _pick(a, dims: _Dims, axis: int):
    """a [Qp, Bp*Wn] -> [Qp, Wn]: for each query, the Wn entries of its own row (axis 0) or column (axis 1)."""
    a = a.reshape(dims.queries, dims.rows, dims.window)
    row = jax.lax.broadcasted_iota(jnp.int32, a.shape, 1)
    return jnp.sum(jnp.where(row == _query_positions(dims, axis), a, 0.0), axis=1)


def _spread(r, dims: _Dims, axis: int):
    """Transpose of `_pick`: r [Qp, Wn] -> [Qp, Bp*Wn], placed at each query's own row (axis 0) or column."""
    shape = (dims.queries, dims.rows, dims.window)
    row = jax.lax.broadcasted_iota(jnp.int32, shape, 1)
    spread = jnp.where(row == _query_positions(dims, axis), jnp.broadcast_to(r[:, None, :], shape), 0.0)
    return spread.reshape(dims.queries, dims.rows * dims.window)


def _window(ref, dims: _Dims):
    """This program's Wn x Wn memory window of a padded key/value image ref [Hp, Wp_img, Dp] -> [Wn*Wn, Dp]."""
    top = pl.program_id(2) * dims.block
    left = pl.program_id(3) * dims.block
    return ref[pl.ds(top, dims.window), pl.ds(left, dims.window), :].reshape(dims.keys, dims.depth)


def _logits(q, k, row_table, col_table, dims: _Dims, precision):
    """[Qp, Kp] float32 logits of one block: content + row + column terms, padded keys masked."""
    wn = dims.window
    logits = _dot(q, k, _NT, precision).reshape(dims.queries, wn, wn)
    rows = _pick(_dot(q, row_table, _NT, precision), dims, 0)  # [Qp, Wn]: q . rel_h[j - y + b - 1]
    cols = _pick(_dot(q, col_table, _NT, precision), dims, 1)
    logits = logits + rows[:, :, None] + cols[:, None, :]
    j = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1)
    i = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
    logits = jnp.where((j < dims.memory) & (i < dims.memory), logits, MASKED_LOGIT)
    return logits.reshape(dims.queries, dims.keys)


def _forward_kernel(q_ref, k_ref, v_ref, row_ref, col_ref, o_ref, lse_ref, *, dims: _Dims):
    q, k, v = q_ref[...], _window(k_ref, dims), _window(v_ref, dims)
    precision = layout.matmul_precision(q.dtype)
    logits = _logits(q, k, row_ref[...], col_ref[...], dims, precision)
    peak = jnp.max(logits, axis=1)
    weights = jnp.exp(logits - peak[:, None])
    total = jnp.sum(weights, axis=1)
    out = _dot(weights.astype(v.dtype), v, _NN, precision) / total[:, None]
    o_ref[...] = out.astype(o_ref.dtype)
    lse_ref[...] = peak + jnp.log(total)


def _backward_kernel(
    q_ref, k_ref, v_ref, row_ref, col_ref, o_ref, do_ref, lse_ref, dq_ref, dk_ref, dv_ref, drow_ref, dcol_ref, *, dims
):
    q, k, v = q_ref[...], _window(k_ref, dims), _window(v_ref, dims)
    row_table, col_table = row_ref[...], col_ref[...]
    do = do_ref[...]
    precision = layout.matmul_precision(q.dtype)
    logits = _logits(q, k, row_table, col_table, dims, precision)
    weights = jnp.exp(logits - lse_ref[...][:, None])  # [Qp, Kp], the softmax again from the saved log-sum-exp
    delta = jnp.sum(o_ref[...].astype(jnp.float32) * do.astype(jnp.float32), axis=1)
    dv = _dot(weights.astype(do.dtype), do, _TN, precision)
    dweights = _dot(do, v, _NT, precision)
    dlogits = weights * (dweights - delta[:, None])
    dlogits_in = dlogits.astype(q.dtype)
    dq = _dot(dlogits_in, k, _NN, precision)
    dk = _dot(dlogits_in, q, _TN, precision)
    tile = dlogits.reshape(dims.queries, dims.window, dims.window)
    drow = jnp.sum(tile, axis=2)  # [Qp, Wn]: d loss / d (q . rel_h[j - y + b - 1]), summed over window columns
    dcol = jnp.sum(tile, axis=1)
    dq = dq + _dot(_spread(drow, dims, 0).astype(q.dtype), row_table, _NN, precision)
    dq = dq + _dot(_spread(dcol, dims, 1).astype(q.dtype), col_table, _NN, precision)
    dq_ref[...] = dq.astype(dq_ref.dtype)
    dk_ref[...] = dk.astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)
    drow_ref[...] = drow
    dcol_ref[...] = dcol


# ------------------------------------------------------------------------------------------------------ launches


def _grid(dims: _Dims, batch: int, heads: int) -> tuple[int, int, int, int]:
    """(image, head, block row, block column): consecutive programs share one head's image, so its overlapping
    windows are read from cache (GPU) or stay resident (TPU)."""
    return (batch, heads, dims.blocks_h, dims.blocks_w)


def _specs(dims: _Dims):
    """BlockSpecs: per-block rows [.., rows, Dp], the whole padded image of one (image, head), the tables."""

    def per_block(*tail):
        return pl.BlockSpec((None, None, None, None, *tail), lambda n, g, y, x: (n, g, y, x) + (0,) * len(tail))

    image = pl.BlockSpec((None, None, *dims.image_shape, dims.depth), lambda n, g, y, x: (n, g, 0, 0, 0))
    table = pl.BlockSpec((dims.rows * dims.window, dims.depth), lambda n, g, y, x: (0, 0))
    return {
        "query": per_block(dims.queries, dims.depth),
        "image": image,
        "table": table,
        "lse": per_block(dims.queries),
        "window": per_block(dims.keys, dims.depth),
        "relative": per_block(dims.queries, dims.window),
    }


def _forward(q, k, v, row_table, col_table, dims: _Dims):
    """q [N, g, Bh, Bw, Qp, Dp], k, v [N, g, Hp, Wp_img, Dp], tables [Bp*Wn, Dp] -> out like q, lse [.., Qp]."""
    specs = _specs(dims)
    return pl.pallas_call(
        functools.partial(_forward_kernel, dims=dims),
        out_shape=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct(q.shape[:-1], jnp.float32)),
        grid=_grid(dims, q.shape[0], q.shape[1]),
        in_specs=[specs["query"], specs["image"], specs["image"], specs["table"], specs["table"]],
        out_specs=(specs["query"], specs["lse"]),
        name="halo_attention_forward",
        **dims.launch.pallas_call_options(),
    )(q, k, v, row_table, col_table)


def _backward(q, k, v, row_table, col_table, out, lse, dout, dims: _Dims):
    """-> dq like q, dk, dv per window [N, g, Bh, Bw, Wn*Wn, Dp], drow, dcol [N, g, Bh, Bw, Qp, Wn] float32."""
    specs = _specs(dims)
    blocks = q.shape[:4]
    return pl.pallas_call(
        functools.partial(_backward_kernel, dims=dims),
        out_shape=(
            jax.ShapeDtypeStruct(q.shape, q.dtype),
            jax.ShapeDtypeStruct((*blocks, dims.keys, dims.depth), k.dtype),
            jax.ShapeDtypeStruct((*blocks, dims.keys, dims.depth), v.dtype),
            jax.ShapeDtypeStruct((*blocks, dims.queries, dims.window), jnp.float32),
            jax.ShapeDtypeStruct((*blocks, dims.queries, dims.window), jnp.float32),
        ),
        grid=_grid(dims, q.shape[0], q.shape[1]),
        in_specs=[
            specs["query"],
            specs["image"],
            specs["image"],
            specs["table"],
            specs["table"],
            specs["query"],
            specs["query"],
            specs["lse"],
        ],
        out_specs=(specs["query"], specs["window"], specs["window"], specs["relative"], specs["relative"]),
        name="halo_attention_backward",
        **dims.launch.pallas_call_options(),
    )(q, k, v, row_table, col_table, out, dout, lse)


def _windows_of_image(image, dims: _Dims):
    """[N, g, Hp, Wp_img, D] -> [N, g, Bh, Bw, Wn*Wn, D]: what the kernels read, as an XLA array (for its transpose)."""
    x = layout.sliding_windows(image, 2, dims.blocks_h, dims.block, dims.window)  # [N, g, Bh, Wn, Wp_img, D]
    x = layout.sliding_windows(x, 4, dims.blocks_w, dims.block, dims.window)  # [N, g, Bh, Wn, Bw, Wn, D]
    x = x.transpose(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(*x.shape[:4], dims.keys, x.shape[-1])


def _fold_windows(dwindows, image_shape, dims: _Dims):
    """Adds per-window gradients [N, g, Bh, Bw, Wn*Wn, D] back onto the padded image they were read from (float32)."""
    image = jax.ShapeDtypeStruct(image_shape, jnp.float32)
    (dimage,) = jax.linear_transpose(lambda x: _windows_of_image(x, dims), image)(dwindows.astype(jnp.float32))
    return dimage


def _table_gradient(drel, q, dims: _Dims, axis: int):
    """Sum over all blocks of each query's table cotangent times q: drel [.., Qp, Wn], q [.., Qp, Dp] -> [Bp*Wn, Dp]."""
    b = dims.block
    drel = drel[..., : b * b, :].reshape(-1, b, b, dims.window)
    q = q[..., : b * b, :].reshape(-1, b, b, dims.depth)
    spec = "pyxj,pyxd->yjd" if axis == 0 else "pyxj,pyxd->xjd"
    grad = jnp.einsum(
        spec, drel, q.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST, preferred_element_type=jnp.float32
    )
    grad = jnp.pad(grad, ((0, dims.rows - b), (0, 0), (0, 0)))
    return grad.reshape(dims.rows * dims.window, dims.depth)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _attention(q, k, v, row_table, col_table, dims: _Dims):
    return _forward(q, k, v, row_table, col_table, dims)[0]


def _attention_fwd(q, k, v, row_table, col_table, dims: _Dims):
    out, lse = _forward(q, k, v, row_table, col_table, dims)
    return out, (q, k, v, row_table, col_table, out, lse)


def _attention_bwd(dims: _Dims, residuals, dout):
    q, k, v, row_table, col_table, out, lse = residuals
    dq, dk, dv, drow, dcol = _backward(q, k, v, row_table, col_table, out, lse, dout, dims)
    dk = _fold_windows(dk, k.shape, dims).astype(k.dtype)
    dv = _fold_windows(dv, v.shape, dims).astype(v.dtype)
    drow_table = _table_gradient(drow, q, dims, 0).astype(row_table.dtype)
    dcol_table = _table_gradient(dcol, q, dims, 1).astype(col_table.dtype)
    return dq, dk, dv, drow_table, dcol_table


_attention.defvjp(_attention_fwd, _attention_bwd)


def _kernel_table(rel, dims: _Dims, dtype):
    """rel [R, d] -> [Bp*Wn, Dp]: row (y, j) holds rel[j - y + b - 1], zeros in the padding (layout.relative_table)."""
    table = layout.relative_table(rel, dims.block, dims.halo, dims.rows, dims.window).astype(dtype)
    table = jnp.pad(table, ((0, 0), (0, 0), (0, dims.depth - table.shape[-1])))
    return table.reshape(dims.rows * dims.window, dims.depth)


def halo_attention_pallas(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_h: jax.Array,
    rel_w: jax.Array,
    *,
    block_size: int,
    halo_size: int,
    interpret: bool | None = None,
    config: KernelConfig | None = None,
) -> jax.Array:
    """Same function as `halo_attention_reference` where q, k, v share one shape [N, H, W, heads, d];
    rel_h, rel_w [2(b+h)-1, d]. Unchecked: the public `halo_attention` checks the inputs.

    interpret, config: see `kernels.backend.resolve_launch` (None: interpreted exactly when there is no GPU/TPU,
    the platform's default config).
    """
    dims = _dims(q.shape, block_size, halo_size, resolve_launch(interpret, config))
    n, height, width, heads, depth = q.shape
    b, h, extra_d = block_size, halo_size, dims.depth - depth

    queries = layout.to_query_blocks(q, b).transpose(0, 3, 1, 2, 4, 5, 6)  # [N, g, Bh, Bw, b, b, d]
    queries = queries.reshape(n, heads, dims.blocks_h, dims.blocks_w, b * b, depth)
    queries = jnp.pad(queries, ((0, 0),) * 4 + ((0, dims.queries - b * b), (0, extra_d)))
    image_h, image_w = dims.image_shape
    image_padding = ((0, 0), (h, image_h - height - h), (h, image_w - width - h), (0, 0), (0, extra_d))
    keys, values = (jnp.pad(x, image_padding).transpose(0, 3, 1, 2, 4) for x in (k, v))  # [N, g, Hp, Wp_img, Dp]
    row_table, col_table = (_kernel_table(rel, dims, q.dtype) for rel in (rel_h, rel_w))
    out = _attention(queries, keys, values, row_table, col_table, dims)  # [N, g, Bh, Bw, Qp, Dp]
    out = out[..., : b * b, :depth].reshape(n, heads, dims.blocks_h, dims.blocks_w, b, b, depth)
    return layout.from_query_blocks(out.transpose(0, 2, 3, 1, 4, 5, 6))
