"""One generation step of a stack of cached causal conv layers (Fast WaveNet, Fast PixelCNN++): a pure-jnp
reference (the XLA path) and a Pallas kernel that runs all layers of the step in one program and updates the
cache in place.

cached_dilated_conv_step(x, cache, read_slots, write_slots, weights, gate_bias, *, cell, impl="auto") is the
public function, and the only one that checks its inputs; cell is the layer's structure (CELLS: "gated" for
WaveNet, "relu", "gated_resnet" for PixelCNN++'s blocks), impl is "xla", "pallas" or "auto" (Pallas on TPU, XLA
elsewhere: the kernel measured slower than XLA on a GPU, `auto_takes_kernel`). Which cache rows a step reads and
writes comes from the caller (common/nn/cached_conv.py: RingLayout for 1-D rings, PixelRingLayout for the 2-D
windows of images).
"""

from kernels.backend import IMPLEMENTATIONS, resolve_impl
from kernels.base import KernelConfig
from kernels.cached_dilated_conv.api import cached_dilated_conv_step, preferred_batch
from kernels.cached_dilated_conv.layout import CELLS, StackWeights, concat_elu, project, step_cost
from kernels.cached_dilated_conv.pallas import auto_takes_kernel, cached_dilated_conv_step_pallas
from kernels.cached_dilated_conv.reference import cached_dilated_conv_step_reference

__all__ = [
    "CELLS",
    "IMPLEMENTATIONS",
    "KernelConfig",
    "StackWeights",
    "auto_takes_kernel",
    "cached_dilated_conv_step",
    "cached_dilated_conv_step_pallas",
    "cached_dilated_conv_step_reference",
    "concat_elu",
    "preferred_batch",
    "project",
    "resolve_impl",
    "step_cost",
]
