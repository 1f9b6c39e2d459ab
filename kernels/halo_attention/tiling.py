"""How the halo attention kernels cut their work into tiles, and the launch config, chosen by shape from one table.

Three tile sizes (all powers of two; 0 means "the whole axis", what the interpreter uses):
  query_tile   queries per program of the forward and dq passes (of the Qp >= (b/s)^2 padded queries of a block)
  window_rows  memory-window rows per step of those passes: the window's keys are streamed in chunks of
               window_rows x Wn keys with an online softmax, so a large window never sits in shared memory whole
  key_rows     key-block rows per program of the dk/dv pass (of the Kw >= b padded rows of a key block)
A program's logit tile is query_tile x (window_rows * Wn) in float32 and its k/v chunks window_rows * Wn * Dp
elements each; the table keeps those near the b = 8, h = 3 bfloat16 setting measured on an H100
(docs/halo_attention_gpu.md: a 64 x 256 tile with 4 warps), which fits the registers and shared memory.
"""

import dataclasses

import jax.numpy as jnp

from kernels.base import KernelConfig, is_power_of_two


@dataclasses.dataclass(frozen=True)
class HaloConfig(KernelConfig):
    """`KernelConfig` plus the tile sizes of the module docstring (0: the whole axis; else a power of two)."""

    query_tile: int = 0
    window_rows: int = 0
    key_rows: int = 0

    def __post_init__(self):
        super().__post_init__()
        for name in ("query_tile", "window_rows", "key_rows"):
            value = getattr(self, name)
            if value != 0 and not is_power_of_two(value):
                raise ValueError(f"{name} must be 0 (the whole axis) or a power of two, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TileRule:
    """One row of `GPU_TILES`: the config for windows up to max_window (Wn, the padded b + 2h) in one dtype."""

    max_window: int
    dtype: str
    config: HaloConfig
    why: str


GPU_TILES = (
    TileRule(
        16,
        "bfloat16",
        HaloConfig(num_warps=4, num_stages=1, query_tile=64, window_rows=16, key_rows=16),
        "b <= 12 with b + 2h <= 16 (HaloNet's b = 8, h = 3): the measured 64 x 256 tile and 4 warps, one chunk",
    ),
    TileRule(
        16,
        "float32",
        HaloConfig(num_warps=4, num_stages=2, query_tile=64, window_rows=8, key_rows=8),
        "float32 doubles the k/v bytes: half-window chunks keep them near the bfloat16 size; 2 stages prefetch",
    ),
    TileRule(
        32,
        "bfloat16",
        HaloConfig(num_warps=4, num_stages=2, query_tile=32, window_rows=8, key_rows=8),
        "b up to 16, h up to 4 (Wn = 32): 32 x 256 logit tiles, the 32-row window streamed in 4 chunks",
    ),
    TileRule(
        32,
        "float32",
        HaloConfig(num_warps=4, num_stages=2, query_tile=32, window_rows=4, key_rows=4),
        "the same in float32: quarter-size chunks keep k/v under 64 KB at d = 64",
    ),
    TileRule(
        1 << 30,
        "any",
        HaloConfig(num_warps=4, num_stages=2, query_tile=16, window_rows=2, key_rows=4),
        "larger windows (beyond the HaloNet family): the smallest tensor-core tiles, streamed",
    ),
)


def padded_window(block_size: int, halo_size: int) -> int:
    """Wn: the memory edge b + 2h rounded up to a power of two (Triton tiles), the table's key."""
    return 1 << (block_size + 2 * halo_size - 1).bit_length()


def gpu_config(block_size: int, halo_size: int, dtype) -> HaloConfig:
    """The first `GPU_TILES` rule for this window (`padded_window`) and the inputs' dtype (float16 counts as
    bfloat16)."""
    window = padded_window(block_size, halo_size)
    name = "float32" if jnp.dtype(dtype) == jnp.float32 else "bfloat16"
    for rule in GPU_TILES:
        if window <= rule.max_window and rule.dtype in (name, "any"):
            return rule.config
    raise AssertionError("the last GPU_TILES rule takes every window")
