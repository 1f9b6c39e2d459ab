"""Blocked local self-attention with halos (HaloNets): a pure-jnp reference (the XLA path) and Pallas kernels.

halo_attention(q, k, v, rel_h, rel_w, *, block_size, halo_size, impl="auto", precision="highest") is the public
function, and the only one that checks its inputs; impl is "xla", "pallas" or "auto" (Pallas on TPU, and on GPU
for b <= 8 in 16-bit floats, where it measured faster; XLA elsewhere: `auto_takes_kernel`); both paths take a
strided layer's kept queries. The kernel's tiles and launch config come from tiling.py by shape (`HaloConfig`,
`GPU_TILES`).
Imports only jax and numpy.
"""

from kernels.backend import IMPLEMENTATIONS, resolve_impl
from kernels.base import KernelConfig
from kernels.halo_attention.api import halo_attention
from kernels.halo_attention.layout import auto_takes_kernel, num_offsets
from kernels.halo_attention.pallas import halo_attention_pallas
from kernels.halo_attention.reference import halo_attention_reference
from kernels.halo_attention.tiling import GPU_TILES, HaloConfig

__all__ = [
    "GPU_TILES",
    "HaloConfig",
    "IMPLEMENTATIONS",
    "KernelConfig",
    "auto_takes_kernel",
    "halo_attention",
    "halo_attention_pallas",
    "halo_attention_reference",
    "num_offsets",
    "resolve_impl",
]
