"""Halo attention as Pallas kernels: a forward pass and a two-kernel backward pass, all built from one logit tile.

A HaloNet block has b^2 = 64 queries and (b+2h)^2 = 196 keys (b = 8, h = 3): far below the 128-key tiles of
flash attention, so a program holds a few dense [queries, keys] tiles. Its work is cut by `tiling.HaloConfig`:
query tiles of a block are programs, and the memory window is streamed in chunks of window rows with an online
softmax (whole tiles when interpreting; chosen by shape on a GPU, `tiling.GPU_TILES`).

Kernels (grid: image x head x block row x block column x tile):
  forward      per query tile: out, and the log-sum-exp of every query (saved for the backward pass)
  dq pass      per query tile: dq and the relative-table cotangents dr_h, dr_w of each query (summed over all
               queries into the table gradients by one einsum in XLA)
  dk/dv pass   per key block: loops over the (2c+1)^2 query blocks whose windows reach it (c = ceil(h/b)), and
               their query tiles, recomputes those logits from the saved log-sum-exp, and accumulates dk and dv
               for its own keys in registers; each key is owned by one program, so nothing is added by XLA.
Why two backward kernels: a key lies in the windows of up to (2c+1)^2 query blocks, so a single query-gridded
backward pass must either add its dk/dv into the image across programs (atomics, which Pallas does not offer
portably: ref indexing, the interpreter and Triton's lowering share no atomic add on a tile) or write one copy
per window and let XLA fold them (the old design: (Wn/b)^2 = 4x the dk/dv bytes written and read again, and a
float32 fold). The key-gridded pass writes dk/dv once, at the cost of recomputing each logit a second time
(about 1.5x the backward dots of a fused pass): the trade flash attention's backward makes for dq the other way.

Layout (built by XLA around the kernels):
  queries  [N, g, Bh, Bw, Qp, Dp]  one row per kept query of the block (query (y', x') at y' * (b/s) + x'),
                                    Qp >= (b/s)^2; s = 2 keeps the even rows and columns (a strided layer)
  keys     [N, g, Hp, Wp_img, Dp]  the image zero padded by h (and more at the end), heads first; each program
                                    reads its own window at (by*b, bx*b) straight from it (key (j, i) at j*Wn + i)
  tables   row [Wn, Bp, Dp] and column [Bp, Wn, Dp]: rel_h / rel_w gathered by (window row, query row) and
           (query row, window column), see layout.relative_rows; the dk/dv pass gets one pair per neighbour
           offset, gathered for its key rows.
Every tile edge is a power of two (Triton needs it) and at least `KernelConfig.min_tile` (tensor-core dots need
16 on GPU): Wn >= M = b + 2h and keys past M are masked; padded queries and channels are zeros and are cropped.
Keys outside the image are real zeros of the window and are not masked, as in the reference.

Relative logits: for a chunk of window rows, a = q @ row_chunk^T is [Qt, rows, Bp]; keeping for each query the
entry of its own in-block row gives r[q, j] = q . rel_h[j - s*y' + b - 1]; the column term is the same with the
column table, and the logit tile [Qt, rows, Wn] takes r[:, :, None] + c[:, None, :].

float32 dots use `precision` ("highest": full float32 products; "default": TF32 on tensor cores); other dtypes
use the default. Backend choice lives in `kernels.backend.Launch`; only ref indexing is used (`x_ref[...]`,
`x_ref[pl.ds(...)]`, integer indices), which JAX 0.4.34 and 0.11 share.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from kernels.backend import Launch, resolve_launch
from kernels.base import KernelConfig
from kernels.halo_attention import layout, tiling
from kernels.halo_attention.tiling import HaloConfig

MASKED_LOGIT = -1e30  # padded keys; finite so exp(MASKED - max) is an exact 0 without inf arithmetic


def _pow2(n: int, minimum: int = 1) -> int:
    return max(minimum, 1 << max(0, (n - 1).bit_length()))


@dataclasses.dataclass(frozen=True)
class _Dims:
    """Static sizes of one launch (hashable: it is the non-differentiable argument of the custom VJP)."""

    block: int  # b
    halo: int  # h
    stride: int  # s: 1, or 2 for kept queries
    blocks_h: int  # H / b
    blocks_w: int  # W / b
    window: int  # Wn >= M, the padded memory edge
    rows: int  # Bp >= b/s, the padded query-row count of the relative tables
    queries: int  # Qp >= (b/s)^2
    depth: int  # Dp >= d
    key_edge: int  # Kw >= b, the padded key-block edge of the dk/dv pass
    query_tile: int  # Qt: queries per program
    window_rows: int  # window rows per streamed chunk
    key_rows: int  # key-block rows per dk/dv program
    dtype: str  # the inputs' dtype name (float32 dots take `precision`)
    precision: str  # "highest" | "default"
    launch: Launch

    @property
    def query_edge(self) -> int:
        return self.block // self.stride

    @property
    def memory(self) -> int:
        return self.block + 2 * self.halo

    @property
    def reach(self) -> int:
        """c: query blocks up to c away (per axis) have windows that reach a key block."""
        return -(-self.halo // self.block)

    @property
    def image_shape(self) -> tuple[int, int]:
        """The padded key image: every window (by*b .. by*b + Wn) and key tile (h + ky*b .. + Kw) lies inside it."""
        reach = max(self.window, self.halo + self.key_edge)
        return ((self.blocks_h - 1) * self.block + reach, (self.blocks_w - 1) * self.block + reach)

    @property
    def dot_precision(self) -> jax.lax.Precision | None:
        return layout.matmul_precision(self.dtype, self.precision)


def _tile(requested: int, whole: int, minimum: int) -> int:
    """A tile edge: `requested` (0: whole) clipped to [minimum, whole]."""
    return whole if requested == 0 else max(min(requested, whole), min(minimum, whole))


def _dims(q_shape, k_shape, block_size, halo_size, dtype, precision, launch: Launch) -> _Dims:
    config = launch.config
    m = config.min_tile
    _, height, width, _, depth = k_shape
    stride = height // q_shape[1]
    query_edge = block_size // stride
    window = tiling.padded_window(block_size, halo_size)
    while window * window < m:
        window *= 2
    key_edge = _pow2(block_size)
    while key_edge * key_edge < m:
        key_edge *= 2
    queries = _pow2(query_edge * query_edge, m)
    window_rows = _tile(getattr(config, "window_rows", 0), window, -(-m // window))
    key_rows = _tile(getattr(config, "key_rows", 0), key_edge, -(-m // key_edge))
    return _Dims(
        block=block_size,
        halo=halo_size,
        stride=stride,
        blocks_h=height // block_size,
        blocks_w=width // block_size,
        window=window,
        rows=_pow2(query_edge, -(-m // min(window_rows, key_rows))),
        queries=queries,
        depth=_pow2(depth, m),
        key_edge=key_edge,
        query_tile=_tile(getattr(config, "query_tile", 0), queries, m),
        window_rows=window_rows,
        key_rows=key_rows,
        dtype=jnp.dtype(dtype).name,
        precision=precision,
        launch=launch,
    )


# ---------------------------------------------------------------------------------------------------- kernel body


def _dot(a, b, contract, dims: _Dims):
    """2-D dot_general with float32 accumulation; contract = ((a_dim,), (b_dim,)) (Triton takes no batch dims)."""
    return jax.lax.dot_general(
        a, b, (contract, ((), ())), precision=dims.dot_precision, preferred_element_type=jnp.float32
    )


_NT, _NN, _TN = ((1,), (1,)), ((1,), (0,)), ((0,), (0,))


def _query_rows_cols(first_query, dims: _Dims, shape, axis: int):
    """int32 of `shape` (queries on axis 0): each query's in-block kept row or column (padded queries: >= b/s)."""
    index = jax.lax.broadcasted_iota(jnp.int32, shape, 0) + first_query
    edge = jnp.int32(dims.query_edge)
    return jax.lax.div(index, edge) if axis == 0 else jax.lax.rem(index, edge)


def _row_term(q, table, first_query, dims: _Dims, width: int):
    """q [Qt, Dp], table [width*Bp, Dp] (width-major) -> [Qt, width]: q . table[j, y'] at each query's row y'."""
    a = _dot(q, table, _NT, dims).reshape(q.shape[0], width, dims.rows)
    own = jax.lax.broadcasted_iota(jnp.int32, a.shape, 2) == _query_rows_cols(first_query, dims, a.shape, 0)
    return jnp.sum(jnp.where(own, a, 0.0), axis=2)


def _col_term(q, table, first_query, dims: _Dims, width: int):
    """q [Qt, Dp], table [Bp*width, Dp] (query-column-major) -> [Qt, width]: q . table[x', i] at its column x'."""
    a = _dot(q, table, _NT, dims).reshape(q.shape[0], dims.rows, width)
    own = jax.lax.broadcasted_iota(jnp.int32, a.shape, 1) == _query_rows_cols(first_query, dims, a.shape, 1)
    return jnp.sum(jnp.where(own, a, 0.0), axis=1)


def _spread_rows(r, first_query, dims: _Dims):
    """Transpose of `_row_term`'s pick: r [Qt, width] -> [Qt, width*Bp], placed at each query's own row."""
    shape = (*r.shape, dims.rows)
    own = jax.lax.broadcasted_iota(jnp.int32, shape, 2) == _query_rows_cols(first_query, dims, shape, 0)
    return jnp.where(own, jnp.broadcast_to(r[:, :, None], shape), 0.0).reshape(r.shape[0], -1)


def _spread_cols(r, first_query, dims: _Dims):
    """Transpose of `_col_term`'s pick: r [Qt, width] -> [Qt, Bp*width]."""
    shape = (r.shape[0], dims.rows, r.shape[1])
    own = jax.lax.broadcasted_iota(jnp.int32, shape, 1) == _query_rows_cols(first_query, dims, shape, 1)
    return jnp.where(own, jnp.broadcast_to(r[:, None, :], shape), 0.0).reshape(r.shape[0], -1)


def _chunk_logits(q, k, row_chunk, cols, chunk, first_query, dims: _Dims):
    """Logits [Qt, rows*Wn] (float32) of the window-row chunk `chunk` and the mask of its real keys (j, i < M)."""
    rows, wn = dims.window_rows, dims.window
    logits = _dot(q, k, _NT, dims).reshape(q.shape[0], rows, wn)
    logits = logits + _row_term(q, row_chunk, first_query, dims, rows)[:, :, None] + cols[:, None, :]
    j = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1) + chunk * rows
    i = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
    real = (j < dims.memory) & (i < dims.memory)
    return jnp.where(real, logits, MASKED_LOGIT).reshape(q.shape[0], -1), real.reshape(q.shape[0], -1)


def _window_corner(dims: _Dims):
    """(top, left) of this program's window in the padded image; read outside loops (the 0.4.34 interpreter
    takes program_id only at a kernel's top level)."""
    return pl.program_id(2) * dims.block, pl.program_id(3) * dims.block


def _chunk(ref, corner, chunk, dims: _Dims):
    """Window rows chunk*rows .. + rows of the window at corner (top, left) in a padded image ref -> [rows*Wn, Dp]."""
    top, left = corner
    block = ref[pl.ds(top + chunk * dims.window_rows, dims.window_rows), pl.ds(left, dims.window), :]
    return block.reshape(dims.window_rows * dims.window, dims.depth)


def _table_chunk(row_ref, chunk, dims: _Dims):
    """Rows chunk*rows .. + rows of the row table [Wn, Bp, Dp] -> [rows*Bp, Dp]."""
    return row_ref[pl.ds(chunk * dims.window_rows, dims.window_rows), :, :].reshape(-1, dims.depth)


def _num_chunks(dims: _Dims) -> int:
    return dims.window // dims.window_rows


def _forward_kernel(q_ref, k_ref, v_ref, row_ref, col_ref, o_ref, lse_ref, *, dims: _Dims):
    q = q_ref[...]
    first = pl.program_id(4) * dims.query_tile
    corner = _window_corner(dims)
    cols = _col_term(q, col_ref[...].reshape(-1, dims.depth), first, dims, dims.window)

    def step(chunk, carry):
        peak, total, acc = carry
        k, v = _chunk(k_ref, corner, chunk, dims), _chunk(v_ref, corner, chunk, dims)
        logits, real = _chunk_logits(q, k, _table_chunk(row_ref, chunk, dims), cols, chunk, first, dims)
        new_peak = jnp.maximum(peak, jnp.max(logits, axis=1))
        weights = jnp.where(real, jnp.exp(logits - new_peak[:, None]), 0.0)
        scale = jnp.exp(peak - new_peak)
        acc = acc * scale[:, None] + _dot(weights.astype(v.dtype), v, _NN, dims)
        return new_peak, total * scale + jnp.sum(weights, axis=1), acc

    tile = dims.query_tile
    init = (jnp.full((tile,), MASKED_LOGIT, jnp.float32), jnp.zeros((tile,), jnp.float32))
    peak, total, acc = jax.lax.fori_loop(
        0, _num_chunks(dims), step, (*init, jnp.zeros((tile, dims.depth), jnp.float32))
    )
    o_ref[...] = (acc / total[:, None]).astype(o_ref.dtype)
    lse_ref[...] = peak + jnp.log(total)


def _dq_kernel(q_ref, k_ref, v_ref, row_ref, col_ref, do_ref, lse_ref, delta_ref, dq_ref, drow_ref, dcol_ref, *, dims):
    q, do = q_ref[...], do_ref[...]
    lse, delta = lse_ref[...], delta_ref[...]
    first = pl.program_id(4) * dims.query_tile
    corner = _window_corner(dims)
    col_table = col_ref[...].reshape(-1, dims.depth)
    cols = _col_term(q, col_table, first, dims, dims.window)

    def step(chunk, carry):
        dq, dcol = carry
        k, v = _chunk(k_ref, corner, chunk, dims), _chunk(v_ref, corner, chunk, dims)
        row_chunk = _table_chunk(row_ref, chunk, dims)
        logits, _ = _chunk_logits(q, k, row_chunk, cols, chunk, first, dims)
        weights = jnp.exp(logits - lse[:, None])  # the softmax again from the saved log-sum-exp; masked keys: 0
        dlogits = weights * (_dot(do, v, _NT, dims) - delta[:, None])
        dq = dq + _dot(dlogits.astype(q.dtype), k, _NN, dims)
        tile = dlogits.reshape(q.shape[0], dims.window_rows, dims.window)
        drow = jnp.sum(tile, axis=2)  # [Qt, rows]: d loss / d (q . rel_h[j - s*y' + b - 1]) over window columns
        drow_ref[chunk] = drow
        dq = dq + _dot(_spread_rows(drow, first, dims).astype(q.dtype), row_chunk, _NN, dims)
        return dq, dcol + jnp.sum(tile, axis=1)

    init = (jnp.zeros(q.shape, jnp.float32), jnp.zeros((q.shape[0], dims.window), jnp.float32))
    dq, dcol = jax.lax.fori_loop(0, _num_chunks(dims), step, init)
    dq = dq + _dot(_spread_cols(dcol, first, dims).astype(q.dtype), col_table, _NN, dims)
    dq_ref[...] = dq.astype(dq_ref.dtype)
    dcol_ref[...] = dcol


def _dkv_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, row_ref, col_ref, dk_ref, dv_ref, *, dims: _Dims):
    """One key-block row chunk: rows key_rows*t .. of block (ky, kx), keys [rows*Kw, Dp]; adds every query of the
    neighbour blocks (by, bx) = (ky + dy, kx + dx) whose window holds them."""
    ky, kx, part = pl.program_id(2), pl.program_id(3), pl.program_id(4)
    rows, kw, b = dims.key_rows, dims.key_edge, dims.block
    top = ky * b + dims.halo + part * rows
    left = kx * b + dims.halo
    k = k_ref[pl.ds(top, rows), pl.ds(left, kw), :].reshape(rows * kw, dims.depth)
    v = v_ref[pl.ds(top, rows), pl.ds(left, kw), :].reshape(rows * kw, dims.depth)
    tile_shape = (dims.query_tile, rows, kw)
    key_row = jax.lax.broadcasted_iota(jnp.int32, tile_shape, 1) + part * rows  # in the key block
    key_col = jax.lax.broadcasted_iota(jnp.int32, tile_shape, 2)
    dk = jnp.zeros(k.shape, jnp.float32)
    dv = jnp.zeros(v.shape, jnp.float32)
    for dy in range(-dims.reach, dims.reach + 1):
        for dx in range(-dims.reach, dims.reach + 1):
            by, bx = ky + dy, kx + dx
            block_real = (by >= 0) & (by < dims.blocks_h) & (bx >= 0) & (bx < dims.blocks_w)
            by, bx = jnp.clip(by, 0, dims.blocks_h - 1), jnp.clip(bx, 0, dims.blocks_w - 1)
            window_row, window_col = key_row - dy * b + dims.halo, key_col - dx * b + dims.halo
            real = (key_row < b) & (key_col < b) & (window_row >= 0) & (window_row < dims.memory)
            real = real & (window_col >= 0) & (window_col < dims.memory) & block_real
            real = real.reshape(dims.query_tile, rows * kw)
            offset = (dy + dims.reach, dx + dims.reach)
            row_table = row_ref[offset[0], pl.ds(part * rows, rows), :, :].reshape(-1, dims.depth)
            col_table = col_ref[offset[1]].reshape(-1, dims.depth)

            def step(tile, carry, by=by, bx=bx, real=real, row_table=row_table, col_table=col_table):
                dk, dv = carry
                first = tile * dims.query_tile
                queries = pl.ds(first, dims.query_tile)
                q, do = q_ref[by, bx, queries, :], do_ref[by, bx, queries, :]
                lse, delta = lse_ref[by, bx, queries], delta_ref[by, bx, queries]
                logits = _dot(q, k, _NT, dims).reshape(tile_shape)
                logits = logits + _row_term(q, row_table, first, dims, rows)[:, :, None]
                logits = logits + _col_term(q, col_table, first, dims, kw)[:, None, :]
                logits = logits.reshape(dims.query_tile, rows * kw)
                weights = jnp.where(real, jnp.exp(logits - lse[:, None]), 0.0)
                dv = dv + _dot(weights.astype(do.dtype), do, _TN, dims)
                dlogits = weights * (_dot(do, v, _NT, dims) - delta[:, None])
                return dk + _dot(dlogits.astype(q.dtype), q, _TN, dims), dv

            dk, dv = jax.lax.fori_loop(0, dims.queries // dims.query_tile, step, (dk, dv))
    dk_ref[...] = dk.astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


# ------------------------------------------------------------------------------------------------------ launches


def _grid(dims: _Dims, batch: int, heads: int, tiles: int) -> tuple[int, ...]:
    """(image, head, block row, block column, tile): consecutive programs share one head's image, so its
    overlapping windows are read from cache (GPU) or stay resident (TPU)."""
    return (batch, heads, dims.blocks_h, dims.blocks_w, tiles)


def _per_tile(*tile):
    """A BlockSpec for arrays [N, g, Bh, Bw, tiles * tile[0], ...]: this program's tile."""
    rest = (0,) * (len(tile) - 1)
    return pl.BlockSpec((None, None, None, None, *tile), lambda n, g, y, x, t: (n, g, y, x, t, *rest))


def _whole(*shape):
    """A BlockSpec for arrays [N, g, *shape]: everything of this program's (image, head)."""
    return pl.BlockSpec((None, None, *shape), lambda n, g, y, x, t: (n, g) + (0,) * len(shape))


def _shared(*shape):
    """A BlockSpec for an array every program reads whole (the tables)."""
    return pl.BlockSpec(shape, lambda n, g, y, x, t: (0,) * len(shape))


def _query_specs(dims: _Dims):
    qt, wn, bp, dp = dims.query_tile, dims.window, dims.rows, dims.depth
    return {
        "query": _per_tile(qt, dp),
        "lse": _per_tile(qt),
        "image": _whole(*dims.image_shape, dp),
        "row": _shared(wn, bp, dp),
        "col": _shared(bp, wn, dp),
    }


def _call(kernel, dims: _Dims, grid, in_specs, out_specs, out_shape, name):
    return pl.pallas_call(
        functools.partial(kernel, dims=dims),
        out_shape=out_shape,
        grid=grid,
        in_specs=in_specs,
        out_specs=out_specs,
        name=name,
        **dims.launch.pallas_call_options(),
    )


def _forward(queries, keys, values, row_table, col_table, dims: _Dims):
    """queries [N, g, Bh, Bw, Qp, Dp], keys, values [N, g, Hp, Wp_img, Dp] -> out like queries, lse [.., Qp]."""
    specs = _query_specs(dims)
    n, heads = queries.shape[:2]
    return _call(
        _forward_kernel,
        dims,
        _grid(dims, n, heads, dims.queries // dims.query_tile),
        [specs["query"], specs["image"], specs["image"], specs["row"], specs["col"]],
        (specs["query"], specs["lse"]),
        (jax.ShapeDtypeStruct(queries.shape, queries.dtype), jax.ShapeDtypeStruct(queries.shape[:-1], jnp.float32)),
        "halo_attention_forward",
    )(queries, keys, values, row_table, col_table)


def _dq_pass(queries, keys, values, row_table, col_table, dout, lse, delta, dims: _Dims):
    """-> dq like queries, drow [N, g, Bh, Bw, Qp, Wn] and dcol [.., Qp, Wn] (float32: per-query table cotangents)."""
    specs = _query_specs(dims)
    n, heads = queries.shape[:2]
    tiles, chunks = dims.queries // dims.query_tile, _num_chunks(dims)
    blocks = queries.shape[:4]
    drow_shape = (*blocks, tiles, chunks, dims.query_tile, dims.window_rows)  # chunk-major: one store per chunk
    drow_spec = pl.BlockSpec(
        (None, None, None, None, None, chunks, dims.query_tile, dims.window_rows),
        lambda n, g, y, x, t: (n, g, y, x, t, 0, 0, 0),
    )
    dq, drow, dcol = _call(
        _dq_kernel,
        dims,
        _grid(dims, n, heads, tiles),
        [specs["query"], specs["image"], specs["image"], specs["row"], specs["col"], specs["query"], specs["lse"]]
        + [specs["lse"]],
        (specs["query"], drow_spec, _per_tile(dims.query_tile, dims.window)),
        (
            jax.ShapeDtypeStruct(queries.shape, queries.dtype),
            jax.ShapeDtypeStruct(drow_shape, jnp.float32),
            jax.ShapeDtypeStruct((*blocks, dims.queries, dims.window), jnp.float32),
        ),
        "halo_attention_dq",
    )(queries, keys, values, row_table, col_table, dout, lse, delta)
    drow = drow.transpose(0, 1, 2, 3, 4, 6, 5, 7).reshape(*blocks, dims.queries, dims.window)
    return dq, drow, dcol


def _dkv_pass(queries, dout, lse, delta, keys, values, key_row_tables, key_col_tables, dims: _Dims):
    """-> dk, dv per key block [N, g, Bh, Bw, Kw*Kw, Dp] (rows past b and channels past d are padding)."""
    n, heads = queries.shape[:2]
    parts = dims.key_edge // dims.key_rows
    blocks = queries.shape[:4]
    whole_queries = _whole(*queries.shape[2:])
    whole_lse = _whole(*lse.shape[2:])
    image = _whole(*dims.image_shape, dims.depth)
    out = _per_tile(dims.key_rows * dims.key_edge, dims.depth)
    shape = jax.ShapeDtypeStruct((*blocks, dims.key_edge * dims.key_edge, dims.depth), keys.dtype)
    return _call(
        _dkv_kernel,
        dims,
        _grid(dims, n, heads, parts),
        [whole_queries, whole_queries, whole_lse, whole_lse, image, image]
        + [_shared(*key_row_tables.shape), _shared(*key_col_tables.shape)],
        (out, out),
        (shape, shape),
        "halo_attention_dkv",
    )(queries, dout, lse, delta, keys, values, key_row_tables, key_col_tables)


# ------------------------------------------------------------------------------------------- layout around them


def _kept_rows(dims: _Dims) -> np.ndarray:
    """Full-resolution in-block rows of the Bp table rows: s*y' (rows y' >= b/s land at >= b: zero padding)."""
    return dims.stride * np.arange(dims.rows)


def _pad_depth(table, dims: _Dims):
    return jnp.pad(table, ((0, 0),) * (table.ndim - 1) + ((0, dims.depth - table.shape[-1]),))


def _query_tables(rel_h, rel_w, dims: _Dims, dtype):
    """Row table [Wn, Bp, Dp] and column table [Bp, Wn, Dp] of the forward and dq passes."""
    window_rows = np.arange(dims.window)
    rows = layout.relative_rows(rel_h, dims.block, dims.halo, _kept_rows(dims), window_rows).transpose(1, 0, 2)
    cols = layout.relative_rows(rel_w, dims.block, dims.halo, _kept_rows(dims), window_rows)
    return _pad_depth(rows, dims).astype(dtype), _pad_depth(cols, dims).astype(dtype)


def _key_tables(rel_h, rel_w, dims: _Dims, dtype):
    """Per neighbour offset d in [-c, c]: row tables [2c+1, Kw, Bp, Dp], column tables [2c+1, Bp, Kw, Dp] for the
    key rows t of a key block seen from the window of the query block d blocks below (window row t - d*b + h)."""
    key = np.arange(dims.key_edge)
    rows, cols = [], []
    for offset in range(-dims.reach, dims.reach + 1):
        window = np.where(key < dims.block, key - offset * dims.block + dims.halo, -1)
        rows.append(layout.relative_rows(rel_h, dims.block, dims.halo, _kept_rows(dims), window).transpose(1, 0, 2))
        cols.append(layout.relative_rows(rel_w, dims.block, dims.halo, _kept_rows(dims), window))
    return _pad_depth(jnp.stack(rows), dims).astype(dtype), _pad_depth(jnp.stack(cols), dims).astype(dtype)


def _to_blocks(q, dims: _Dims):
    """q [N, H/s, W/s, g, d] -> [N, g, Bh, Bw, Qp, Dp], zero padded."""
    n, _, _, heads, depth = q.shape
    edge = dims.query_edge
    blocks = layout.to_query_blocks(q, edge).transpose(0, 3, 1, 2, 4, 5, 6)  # [N, g, Bh, Bw, b/s, b/s, d]
    blocks = blocks.reshape(n, heads, dims.blocks_h, dims.blocks_w, edge * edge, depth)
    return jnp.pad(blocks, ((0, 0),) * 4 + ((0, dims.queries - edge * edge), (0, dims.depth - depth)))


def _from_blocks(blocks, edge: int, depth: int):
    """Inverse of `_to_blocks` for blocks [N, g, Bh, Bw, >= edge^2, >= d] -> [N, Bh*edge, Bw*edge, g, d]."""
    n, heads, blocks_h, blocks_w = blocks.shape[:4]
    blocks = blocks[..., : edge * edge, :depth].reshape(n, heads, blocks_h, blocks_w, edge, edge, depth)
    return layout.from_query_blocks(blocks.transpose(0, 2, 3, 1, 4, 5, 6))


def _to_image(x, dims: _Dims):
    """k or v [N, H, W, g, d] -> [N, g, Hp, Wp_img, Dp]: zero padded by h before, to `image_shape` after."""
    _, height, width, _, depth = x.shape
    image_h, image_w = dims.image_shape
    h = dims.halo
    padding = ((0, 0), (h, image_h - height - h), (h, image_w - width - h), (0, 0), (0, dims.depth - depth))
    return jnp.pad(x, padding).transpose(0, 3, 1, 2, 4)


def _key_blocks_to_image(dk, dims: _Dims, depth: int):
    """[N, g, Bh, Bw, Kw*Kw, Dp] -> [N, H, W, g, d]: the first b x b keys and d channels of each block."""
    kw, b = dims.key_edge, dims.block
    dk = dk.reshape(*dk.shape[:4], kw, kw, dims.depth)[..., :b, :b, :]
    return _from_blocks(dk.reshape(*dk.shape[:4], b * b, dims.depth), b, depth)


def _table_gradient(dtable, queries, dims: _Dims):
    """Sum over all blocks of each query's table cotangent times q: dtable [.., Qp, Wn], queries [.., Qp, Dp]
    -> [Bp, Wn, Dp], the gradient of the table entry (y', j) from the queries of kept row (axis 0) or column y'."""
    return jnp.einsum(
        "...qj,...qd->qjd",
        dtable,
        queries.astype(jnp.float32),
        precision=jax.lax.Precision.HIGHEST,
        preferred_element_type=jnp.float32,
    )


def _per_row(per_query, dims: _Dims, axis: int):
    """[Qp, Wn, Dp] -> [Bp, Wn, Dp]: sums over the queries of each kept row (axis 0) or column (axis 1)."""
    index = np.arange(dims.queries)
    position = index // dims.query_edge if axis == 0 else index % dims.query_edge
    position = np.where(index < dims.query_edge**2, position, dims.rows)  # padded queries: dropped
    onehot = (position[:, None] == np.arange(dims.rows)[None, :]).astype(np.float32)
    return jnp.einsum("qjd,qy->yjd", per_query, onehot, precision=jax.lax.Precision.HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _attention(q, k, v, rel_h, rel_w, dims: _Dims):
    return _attention_fwd(q, k, v, rel_h, rel_w, dims)[0]


def _attention_fwd(q, k, v, rel_h, rel_w, dims: _Dims):
    queries, keys, values = _to_blocks(q, dims), _to_image(k, dims), _to_image(v, dims)
    row_table, col_table = _query_tables(rel_h, rel_w, dims, q.dtype)
    out, lse = _forward(queries, keys, values, row_table, col_table, dims)
    return _from_blocks(out, dims.query_edge, q.shape[-1]), (q, k, v, rel_h, rel_w, out, lse)


def _attention_bwd(dims: _Dims, residuals, dout):
    q, k, v, rel_h, rel_w, out, lse = residuals
    queries, keys, values = _to_blocks(q, dims), _to_image(k, dims), _to_image(v, dims)
    douts = _to_blocks(dout, dims)
    delta = jnp.sum(out.astype(jnp.float32) * douts.astype(jnp.float32), axis=-1)  # [.., Qp]: rowsum(o * do)
    tables, tables_vjp = jax.vjp(lambda rh, rw: _query_tables(rh, rw, dims, q.dtype), rel_h, rel_w)
    dq, drow, dcol = _dq_pass(queries, keys, values, *tables, douts, lse, delta, dims)
    key_tables = _key_tables(rel_h, rel_w, dims, q.dtype)
    dk, dv = _dkv_pass(queries, douts, lse, delta, keys, values, *key_tables, dims)
    drow_table = _per_row(_table_gradient(drow, queries, dims), dims, 0).transpose(1, 0, 2)  # [Wn, Bp, Dp]
    dcol_table = _per_row(_table_gradient(dcol, queries, dims), dims, 1)
    drel_h, drel_w = tables_vjp((drow_table.astype(q.dtype), dcol_table.astype(q.dtype)))
    depth = q.shape[-1]
    return (
        _from_blocks(dq, dims.query_edge, depth),
        _key_blocks_to_image(dk, dims, depth),
        _key_blocks_to_image(dv, dims, depth),
        drel_h,
        drel_w,
    )


_attention.defvjp(_attention_fwd, _attention_bwd)


def launch_for(q_shape, k_shape, block_size, halo_size, dtype, interpret=None, config=None) -> Launch:
    """The launch a call would use: `resolve_launch`, with the GPU config from `tiling.GPU_TILES` by shape when
    compiled for a GPU and no config is given."""
    launch = resolve_launch(interpret, config, HaloConfig)
    if config is None and not launch.interpret and launch.platform == "gpu":
        launch = Launch(launch.platform, launch.interpret, tiling.gpu_config(block_size, halo_size, dtype))
    return launch


def halo_attention_pallas(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_h: jax.Array,
    rel_w: jax.Array,
    *,
    block_size: int,
    halo_size: int,
    precision: str = "highest",
    interpret: bool | None = None,
    config: KernelConfig | None = None,
) -> jax.Array:
    """Same function as `halo_attention_reference` for v of k's shape: q [N, H/s, W/s, heads, d] (s = 1, or 2 for
    a strided layer's kept queries), k, v [N, H, W, heads, d], rel_h, rel_w [2(b+h)-1, d] -> like q.
    Unchecked: the public `halo_attention` checks the inputs.

    precision: "highest" | "default", for float32 dots (layout.matmul_precision). interpret, config: see
    `kernels.backend.resolve_launch`; config None takes `tiling.GPU_TILES` on a GPU, whole tiles elsewhere; a
    plain `KernelConfig` means whole tiles with its launch knobs.
    """
    launch = launch_for(q.shape, k.shape, block_size, halo_size, q.dtype, interpret, config)
    dims = _dims(q.shape, k.shape, block_size, halo_size, q.dtype, precision, launch)
    return _attention(q, k, v, rel_h, rel_w, dims)
