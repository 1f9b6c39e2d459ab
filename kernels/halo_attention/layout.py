"""Input checks, the blocked layout and the relative-logit tables, shared by the XLA and the Pallas paths.

Names used throughout: b = block_size (query block edge), h = halo_size, M = b + 2h (memory window edge),
R = 2(b + h) - 1 (relative offsets per axis). A query at in-block row y and a key at window row j are
j - h - y rows apart, so their row logit is q . rel_h[j - y + b - 1] (the same for columns with rel_w).
Only jax and numpy are imported, so the package runs on a machine without the rest of the project.
"""

import jax
import jax.numpy as jnp
import numpy as np


def num_offsets(block_size: int, halo_size: int) -> int:
    """R = 2(b + h) - 1: the distinct row (or column) offsets between a query and a key of its window."""
    return 2 * (block_size + halo_size) - 1


def check_inputs(q, k, v, rel_h, rel_w, block_size: int, halo_size: int) -> None:
    """Raises ValueError, naming the sizes, for anything the kernels would otherwise misread."""
    if not isinstance(block_size, int | np.integer) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if not isinstance(halo_size, int | np.integer) or halo_size < 0:
        raise ValueError(f"halo_size must be a non-negative integer, got {halo_size!r}")
    if q.ndim != 5:
        raise ValueError(f"q must be [batch, H, W, heads, d], got shape {tuple(q.shape)}")
    for name, x in (("k", k), ("v", v)):
        if x.shape != q.shape:
            raise ValueError(f"{name} must have q's shape {tuple(q.shape)}, got {tuple(x.shape)}")
        if x.dtype != q.dtype:
            raise ValueError(f"{name} must have q's dtype {q.dtype}, got {x.dtype}")
    _, height, width, _, depth = q.shape
    if height % block_size or width % block_size:
        raise ValueError(
            f"H={height} and W={width} must be multiples of block_size={block_size} "
            f"(remainders {height % block_size} and {width % block_size})"
        )
    expected = (num_offsets(block_size, halo_size), depth)
    for name, table in (("rel_h", rel_h), ("rel_w", rel_w)):
        if tuple(table.shape) != expected:
            raise ValueError(
                f"{name} must have shape {expected} = [2*(block_size + halo_size) - 1, d] for block_size={block_size}, "
                f"halo_size={halo_size}, d={depth}; got {tuple(table.shape)}"
            )


def matmul_precision(dtype) -> jax.lax.Precision | None:
    """float32 inputs get float32 products (no TF32 on GPU), so both paths agree to ~1e-6; others use the default."""
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def relative_index(block_size: int, window: int) -> np.ndarray:
    """[b, window] int: the table row for in-block query row y and window row j, j - y + b - 1."""
    return np.arange(window)[None, :] - np.arange(block_size)[:, None] + block_size - 1


def relative_table(rel: jax.Array, block_size: int, halo_size: int, rows: int, window: int) -> jax.Array:
    """rel [R, d] -> [rows, window, d]: entry (y, j) is rel[j - y + b - 1]; zero where y >= b or j >= b + 2h.

    One gather on the (small) parameter table, so its gradient is a scatter-add into R rows. rows >= b and
    window >= b + 2h let the Pallas path pad both to friendly tile sizes; the XLA path uses rows = b, window = M.
    """
    memory = block_size + 2 * halo_size
    index = relative_index(block_size, window)
    valid = (np.arange(window) < memory)[None, :]
    table = jnp.where(valid[..., None], rel[np.where(valid, index, 0)], 0)
    return jnp.pad(table, ((0, rows - block_size), (0, 0), (0, 0)))


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
