"""The public entry point: one function, the inputs checked once, the implementation picked by name."""

import jax

from kernels.backend import resolve_impl, resolve_launch
from kernels.cached_dilated_conv import layout, pallas
from kernels.cached_dilated_conv.layout import StackWeights
from kernels.cached_dilated_conv.reference import cached_dilated_conv_step_reference


def preferred_batch(batch: int, impl: str) -> int:
    """The batch a generation loop should allocate its cache at, so that `impl` never pads it per step."""
    if resolve_impl(impl) == "xla":
        return batch
    return pallas.padded_batch(batch, resolve_launch().config)


def cached_dilated_conv_step(
    x: jax.Array,
    cache: jax.Array,
    read_slots: jax.Array,
    write_slots: jax.Array,
    weights: StackWeights,
    gate_bias: jax.Array | None = None,
    *,
    cell: str = "gated",
    impl: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """One generation step of a stack of cached conv layers (cells and equations: layout.py).

    x [B, C], cache [S, B, C], read_slots int [L, convs * (k-1)], write_slots int [L] ([L, 2] for "gated_resnet"),
    gate_bias [L, G, B, R] or None -> (out, the updated cache): out is the skip sum [B, S] for "gated", the last
    output [B, C] for "relu", every layer's output [L, B, C] for "gated_resnet".
    impl: "xla" (pure jnp), "pallas" (one kernel, cache updated in place; interpreted on CPU) or "auto" (the
    kernel on TPU, XLA elsewhere: slower on a GPU, `pallas.auto_takes_kernel`).
    """
    layout.check_inputs(x, cache, read_slots, write_slots, weights, gate_bias, cell)
    choice = resolve_impl(impl, kernel_fits=pallas.auto_takes_kernel)
    step = pallas.cached_dilated_conv_step_pallas if choice == "pallas" else cached_dilated_conv_step_reference
    return step(x, cache, read_slots, write_slots, weights, gate_bias, cell=cell)
