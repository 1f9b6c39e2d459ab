"""Blocked local self-attention with halos (HaloNets): a pure-jnp reference (the XLA path) and Pallas kernels.

halo_attention(q, k, v, rel_h, rel_w, *, block_size, halo_size, impl="auto", precision="highest") is the public
function, and the only one that checks its inputs; impl is "xla", "pallas" or "auto" (Pallas on GPU/TPU, XLA
elsewhere); both paths take a strided layer's kept queries. The kernel's tiles and launch config come from
tiling.py by shape (`HaloConfig`, `GPU_TILES`).
Imports only jax and numpy.
"""

from kernels.backend import IMPLEMENTATIONS, resolve_impl
from kernels.base import KernelConfig
from kernels.halo_attention.api import halo_attention
from kernels.halo_attention.layout import num_offsets
from kernels.halo_attention.pallas import halo_attention_pallas
from kernels.halo_attention.reference import halo_attention_reference
from kernels.halo_attention.tiling import GPU_TILES, HaloConfig

__all__ = [
    "GPU_TILES",
    "HaloConfig",
    "IMPLEMENTATIONS",
    "KernelConfig",
    "halo_attention",
    "halo_attention_pallas",
    "halo_attention_reference",
    "num_offsets",
    "resolve_impl",
]
