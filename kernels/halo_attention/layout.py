"""Input checks, the blocked layout and the relative-logit tables, shared by the XLA and the Pallas paths.

Names used throughout: b = block_size (query block edge), h = halo_size, M = b + 2h (memory window edge),
R = 2(b + h) - 1 (relative offsets per axis). A query at in-block row y and a key at window row j are
j - h - y rows apart, so their row logit is q . rel_h[j - y + b - 1] (the same for columns with rel_w).
Only jax and numpy are imported, so the package runs on a machine without the rest of the project.
"""

import jax
import jax.numpy as jnp
import numpy as np

from kernels.base import (
    check_choice,
    check_dtype,
    check_floating,
    check_integer,
    check_nonempty,
    check_rank,
    check_shape,
)


def num_offsets(block_size: int, halo_size: int) -> int:
    """R = 2(b + h) - 1: the distinct row (or column) offsets between a query and a key of its window."""
    return 2 * (block_size + halo_size) - 1


def check_inputs(q, k, v, rel_h, rel_w, block_size: int, halo_size: int) -> None:
    """Raises ValueError, naming the argument, its shape and the expected one, for anything the paths would misread.

    q [N, H/s, W/s, heads, d] with s = 1, or s = 2 for the kept queries (even rows and columns) of a strided
    layer; k [N, H, W, heads, d], v [N, H, W, heads, dv] (q's dtype); rel_h, rel_w [2(b+h)-1, d]; H and W
    multiples of b (an even b when s = 2). The Pallas kernel takes both strides but only dv = d (`kernel_fits`).
    """
    check_integer("block_size", block_size, minimum=1)
    check_integer("halo_size", halo_size, minimum=0)
    check_rank("q", q, ("batch", "H", "W", "heads", "d"))
    check_floating("q", q)
    check_nonempty("q", q)
    n, rows, cols, heads, depth = q.shape
    if k.shape not in (q.shape, (n, 2 * rows, 2 * cols, heads, depth)):
        raise ValueError(f"k must have q's shape {tuple(q.shape)} (or twice its H and W: kept queries), got {k.shape}")
    check_rank("v", v, ("batch", "H", "W", "heads", "dv"))
    if v.shape[:4] != k.shape[:4]:
        raise ValueError(f"v must have k's shape {k.shape} but for the last axis (dv), got {v.shape}")
    for name, x in (("k", k), ("v", v), ("rel_h", rel_h), ("rel_w", rel_w)):
        check_dtype(name, x, q.dtype, " like q")
    _, height, width, _, _ = k.shape
    if height % block_size or width % block_size:
        raise ValueError(
            f"H={height} and W={width} must be multiples of block_size={block_size} "
            f"(remainders {height % block_size} and {width % block_size})"
        )
    if height != rows and block_size % 2:
        raise ValueError(f"kept queries (q at half of k's H and W) need an even block_size, got {block_size}")
    expected = (num_offsets(block_size, halo_size), depth)
    why = f" = [2*(block_size + halo_size) - 1, d] for block_size={block_size}, halo_size={halo_size}, d={depth}"
    for name, table in (("rel_h", rel_h), ("rel_w", rel_w)):
        check_shape(name, table, expected, why)


def kernel_fits(q, k, v) -> bool:
    """Whether the Pallas kernel takes these inputs: v of k's shape (dv = d); q at k's resolution or kept queries."""
    return k.shape == v.shape


GPU_AUTO_MAX_BLOCK = 8  # the largest block size impl="auto" runs the kernel for on a GPU


def auto_takes_kernel(platform: str, block_size: int, dtype) -> bool:
    """Whether impl="auto" runs the kernel on `platform` ('gpu' | 'tpu') for this block size and dtype.

    On GPU where an H200 run measured it faster than XLA (docs/halo_attention_gpu.md, "Both kernels on an H200"):
    b <= 8 in 16-bit floats, at stride 1 and 2 (forward + backward 1.5-2.2x XLA). Not b = 12 or 16 (0.3-0.7x)
    nor float32 (forward 0.4x; its backward pass did not finish compiling and running within a minute). TPU:
    unmeasured, the kernel.
    """
    if platform != "gpu":
        return True
    return block_size <= GPU_AUTO_MAX_BLOCK and jnp.dtype(dtype).itemsize == 2


PRECISIONS = ("highest", "default")


def check_precision(precision: str) -> None:
    """Raises unless precision names one of `PRECISIONS` (see `matmul_precision`)."""
    check_choice("precision", precision, PRECISIONS)


def matmul_precision(dtype, precision: str = "highest") -> jax.lax.Precision | None:
    """The precision the dots of both paths get.

    float32 inputs: "highest" (the default) gives float32 products, so the paths agree to ~1e-6; "default" lets
    the platform choose (TF32 tensor cores on an A100/H100: about 3 decimal digits per product, several times
    the speed). Other dtypes always use the default: their products are exact in the float32 accumulator.
    """
    if jnp.dtype(dtype) != jnp.float32:
        return None
    return jax.lax.Precision.HIGHEST if precision == "highest" else None


def relative_index(block_size: int, window: int) -> np.ndarray:
    """[b, window] int: the table row for in-block query row y and window row j, j - y + b - 1."""
    return np.arange(window)[None, :] - np.arange(block_size)[:, None] + block_size - 1


def relative_rows(
    rel: jax.Array, block_size: int, halo_size: int, query_rows: np.ndarray, window_rows: np.ndarray
) -> jax.Array:
    """rel [R, d] -> [len(query_rows), len(window_rows), d]: entry (a, c) is rel[window_rows[c] - query_rows[a] + b - 1]
    for an in-block query row in [0, b) and a window row in [0, b + 2h); zero elsewhere (padding, keys outside
    the window). query_rows are full-resolution rows (a strided layer's kept row y' is 2y'); window rows count
    from the top of the block's memory, so the Pallas key pass can ask for rows of a neighbour block's window.
    One gather on the (small) parameter table, so its gradient is a scatter-add into R rows.
    """
    query_rows, window_rows = np.asarray(query_rows)[:, None], np.asarray(window_rows)[None, :]
    valid = (query_rows >= 0) & (query_rows < block_size) & (window_rows >= 0)
    valid &= window_rows < block_size + 2 * halo_size
    index = np.where(valid, window_rows - query_rows + block_size - 1, 0)
    return jnp.where(valid[..., None], rel[index], 0)


def relative_table(rel: jax.Array, block_size: int, halo_size: int, rows: int, window: int) -> jax.Array:
    """rel [R, d] -> [rows, window, d]: entry (y, j) is rel[j - y + b - 1]; zero where y >= b or j >= b + 2h.

    rows >= b and window >= b + 2h let the Pallas path pad both to friendly tile sizes; the XLA path uses
    rows = b, window = M (`relative_rows` for any rows).
    """
    return relative_rows(rel, block_size, halo_size, np.arange(rows), np.arange(window))


def to_query_blocks(x: jax.Array, block_size: int) -> jax.Array:
    """[N, H, W, g, d] -> [N, H/b, W/b, g, b, b, d]: one b x b query block per (image, block, head)."""
    n, height, width, heads, depth = x.shape
    b = block_size
    x = x.reshape(n, height // b, b, width // b, b, heads, depth)
    return x.transpose(0, 1, 3, 5, 2, 4, 6)


def from_query_blocks(x: jax.Array) -> jax.Array:
    """Inverse of `to_query_blocks`: [N, Bh, Bw, g, b, b, d] -> [N, H, W, g, d]."""
    n, blocks_h, blocks_w, heads, b, _, depth = x.shape
    return x.transpose(0, 1, 4, 2, 5, 3, 6).reshape(n, blocks_h * b, blocks_w * b, heads, depth)


def sliding_windows(x: jax.Array, axis: int, num_blocks: int, block_size: int, window: int) -> jax.Array:
    """Cuts `axis` into `num_blocks` windows of `window` rows, window s starting at row s*b (zeros past the end).

    Built from `ceil(window / b)` shifted slices of the b-blocked axis rather than a gather, so the transpose
    (the backward pass) is pads and adds instead of a scatter. The block index lands at `axis`, the window row
    at `axis + 1`.
    """
    chunks = -(-window // block_size)
    length = (num_blocks + chunks - 1) * block_size
    if x.shape[axis] > length:
        x = jax.lax.slice_in_dim(x, 0, length, axis=axis)
    padding = [(0, 0)] * x.ndim
    padding[axis] = (0, length - x.shape[axis])
    x = jnp.pad(x, padding)
    x = x.reshape(*x.shape[:axis], num_blocks + chunks - 1, block_size, *x.shape[axis + 1 :])
    shifted = [jax.lax.slice_in_dim(x, s, s + num_blocks, axis=axis) for s in range(chunks)]
    x = jnp.concatenate(shifted, axis=axis + 1) if chunks > 1 else shifted[0]
    return jax.lax.slice_in_dim(x, 0, window, axis=axis + 1)


def _haloed_axis(x: jax.Array, axis: int, block_size: int, halo_size: int, window: int) -> jax.Array:
    """`axis` (length B*b) -> [B, window]: each window starts h rows before its block; outside rows are zeros."""
    num_blocks = x.shape[axis] // block_size
    padding = [(0, 0)] * x.ndim
    padding[axis] = (halo_size, 0)
    return sliding_windows(jnp.pad(x, padding), axis, num_blocks, block_size, window)


def to_memory_blocks(x: jax.Array, block_size: int, halo_size: int, window: int) -> jax.Array:
    """[N, H, W, g, d] -> [N, H/b, W/b, g, window, window, d]: the haloed memory of every query block.

    Rows and columns outside the image are zeros (not masked). window = b + 2h is the memory itself; a larger
    window (the Pallas path's padded tile) just reads further pixels or zeros, which the kernel masks.
    Keys and values are held about (window / b)^2 times, not k^2 times as with a per-pixel unfold.
    """
    x = _haloed_axis(x, 1, block_size, halo_size, window)  # [N, Bh, win, W, g, d]
    x = _haloed_axis(x, 3, block_size, halo_size, window)  # [N, Bh, win, Bw, win, g, d]
    return x.transpose(0, 1, 3, 5, 2, 4, 6)
