"""The public entry point: one function, the implementation picked by name."""

import jax

from kernels import backend
from kernels.backend import resolve_impl
from kernels.cached_dilated_conv import layout, pallas
from kernels.cached_dilated_conv.layout import StackWeights
from kernels.cached_dilated_conv.reference import cached_dilated_conv_step_reference


def preferred_batch(batch: int, impl: str) -> int:
    """The batch a generation loop should allocate its cache at, so that `impl` never pads it per step."""
    if resolve_impl(impl) == "xla":
        return batch
    platform = backend.accelerator()
    return pallas.padded_batch(batch, pallas.default_config(platform))


def cached_dilated_conv_step(
    x: jax.Array,
    cache: jax.Array,
    read_slots: jax.Array,
    write_slots: jax.Array,
    weights: StackWeights,
    gate_bias: jax.Array | None = None,
    *,
    activation: str = "gated",
    impl: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """One generation step of a stack of cached causal dilated conv layers (equations: layout.py).

    x [B, C], cache [S, B, C], read_slots int [L, k-1], write_slots int [L], gate_bias [L, G, B, R] or None
    -> (out [B, S] skip sum for "gated" / [B, C] last output for "relu", the updated cache).
    impl: "xla" (pure jnp), "pallas" (one kernel, cache updated in place; interpreted on CPU) or "auto" (the
    kernel on GPU/TPU where its tiles fit the channel counts, else XLA).
    """
    choice = resolve_impl(impl)
    layout.check_inputs(x, cache, read_slots, write_slots, weights, gate_bias, activation)
    if impl == "auto" and choice == "pallas" and backend.accelerator() == "gpu":
        choice = "xla" if pallas.gpu_tile_misfits(weights, activation) else choice
    if choice == "xla":
        return cached_dilated_conv_step_reference(
            x, cache, read_slots, write_slots, weights, gate_bias, activation=activation
        )
    return pallas.cached_dilated_conv_step_pallas(
        x, cache, read_slots, write_slots, weights, gate_bias, activation=activation
    )
