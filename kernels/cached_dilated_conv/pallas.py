"""One cached generation step of a whole conv stack as a single Pallas kernel.

A generation step at small batch moves each layer's weights once and a few [B, C] activations: it is bound by
launch latency and weight bandwidth, not FLOPs (nv-wavenet reaches real time by running all layers of a step in
one persistent kernel). So one program runs every layer of the step: for each layer it reads the layer's past
taps from the cache, computes the layer, and writes the layer's current input back into the same cache buffer
(`input_output_aliases`: the cache is updated in place, never copied). Rows a step does not write keep their
contents. The batch is padded to a multiple of `KernelConfig.min_tile` rows (tensor-core dots need 16 on GPU).

Reads and writes per layer follow the ring contract (layout.py): a layer reads its taps before it writes, and no
layer reads another layer's write row, so reading the input ref and writing the aliased output ref give the
same result whether they are one buffer (GPU, TPU) or two (the interpreter).

Backend choice: `kernels.backend.Launch`, the one place the repo picks a Pallas
lowering (Triton on GPU, Mosaic on TPU, the interpreter elsewhere). Only ref indexing is used (`ref[...]`,
`ref[pl.ds(...)]`, integer indices), which JAX 0.4.34 and newer releases share.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.backend import Launch, resolve_launch
from kernels.base import MIN_TILE, KernelConfig, is_power_of_two
from kernels.cached_dilated_conv import layout
from kernels.cached_dilated_conv.layout import StackWeights


def _dot(a, b):
    """a [M, K] times b [N, K] transposed -> [M, N] in float32 (weights are stored [outputs, inputs])."""
    return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def _kernel(*refs, layers: int, past_taps: int, channels: int, width: int, groups: int, activation: str):
    read_ref, write_ref, x_ref, past_ref, current_ref, bias_ref, gate_bias_ref = refs[:7]
    if activation == "gated":
        residual_ref, residual_bias_ref, skip_ref, skip_bias_ref, cache_ref, out_ref, new_cache_ref = refs[7:]
        skip = skip_bias_ref[...][None, :].astype(jnp.float32)
    else:
        cache_ref, out_ref, new_cache_ref = refs[7:]
    x = x_ref[...].astype(jnp.float32)
    for layer in range(layers):
        taps = [cache_ref[read_ref[layer * past_taps + j]].astype(jnp.float32) for j in range(past_taps)]
        new_cache_ref[write_ref[layer]] = x.astype(new_cache_ref.dtype)
        a = []
        for group in range(groups):
            acc = _dot(x, current_ref[layer, group]) + bias_ref[layer, group][None, :] + gate_bias_ref[layer, group]
            for j, tap in enumerate(taps):
                acc = acc + _dot(tap, past_ref[layer, group, :, pl.ds(j * channels, channels)])
            a.append(acc)
        if activation == "relu":
            x = jnp.maximum(a[0], 0.0)
            continue
        z = jnp.tanh(a[0]) * jax.nn.sigmoid(a[1])
        skip = skip + _dot(z, skip_ref[:, pl.ds(layer * width, width)])
        if layer + 1 < layers:
            x = x + _dot(z, residual_ref[layer]) + residual_bias_ref[layer][None, :]
    out_ref[...] = (skip if activation == "gated" else x).astype(out_ref.dtype)


def cached_dilated_conv_step_pallas(
    x: jax.Array,
    cache: jax.Array,
    read_slots: jax.Array,
    write_slots: jax.Array,
    weights: StackWeights,
    gate_bias: jax.Array | None = None,
    *,
    activation: str = "gated",
    interpret: bool | None = None,
    config: KernelConfig | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Same function as `cached_dilated_conv_step_reference` (shapes there); unchecked: the public
    `cached_dilated_conv_step` checks the inputs. interpret, config: see `kernels.backend.resolve_launch`.

    A batch that is not a multiple of config.min_tile is padded here, which copies the cache every step: a
    generation loop should allocate its cache at `padded_batch(batch)` rows instead.
    """
    launch = resolve_launch(interpret, config)
    if not launch.interpret and launch.platform == "gpu":
        _check_gpu_tiles(weights, activation)
    batch = x.shape[0]
    padded = padded_batch(batch, launch.config)
    if padded != batch:
        pad = padded - batch
        x = jnp.pad(x, ((0, pad), (0, 0)))
        cache = jnp.pad(cache, ((0, 0), (0, pad), (0, 0)))
        if gate_bias is not None:
            gate_bias = jnp.pad(gate_bias, ((0, 0), (0, 0), (0, pad), (0, 0)))
    out, cache = _launch(x, cache, read_slots, write_slots, weights, gate_bias, activation, launch)
    if padded != batch:
        out, cache = out[:batch], cache[:, :batch]
    return out, cache


def gpu_tile_misfits(weights: StackWeights, activation: str) -> dict[str, int]:
    """The channel counts a GPU launch cannot tile: Triton tiles are powers of two, its dots need 16 per edge."""
    _, _, width, channels = weights.current.shape
    sizes = {"channels": channels, "R": width}
    if activation == "gated":
        sizes["skip channels"] = weights.skip.shape[0]
    return {name: n for name, n in sizes.items() if n < MIN_TILE["gpu"] or not is_power_of_two(n)}


def _check_gpu_tiles(weights: StackWeights, activation: str) -> None:
    bad = gpu_tile_misfits(weights, activation)
    if bad:
        raise ValueError(f"on GPU the kernel needs powers of two >= 16, got {bad}; use impl='xla' for these sizes")


def padded_batch(batch: int, config: KernelConfig) -> int:
    """The batch rounded up to whole tiles of config.min_tile rows."""
    return -(-batch // config.min_tile) * config.min_tile


def _launch(x, cache, read_slots, write_slots, weights: StackWeights, gate_bias, activation, launch: Launch):
    layers, groups, width, channels = weights.current.shape
    past_taps = read_slots.shape[1]
    if gate_bias is None:
        gate_bias = jnp.zeros((layers, groups, x.shape[0], width), jnp.float32)
    inputs = [
        read_slots.reshape(-1).astype(jnp.int32),
        write_slots.astype(jnp.int32),
        x,
        weights.past,
        weights.current,
        weights.bias,
        gate_bias,
    ]
    if activation == "gated":
        inputs += [weights.residual, weights.residual_bias, weights.skip, weights.skip_bias]
    inputs.append(cache)
    out_shape = layout.output_shape(x, weights, activation)
    kernel = functools.partial(
        _kernel,
        layers=layers,
        past_taps=past_taps,
        channels=channels,
        width=width,
        groups=groups,
        activation=activation,
    )
    return pl.pallas_call(
        kernel,
        out_shape=(jax.ShapeDtypeStruct(out_shape, x.dtype), jax.ShapeDtypeStruct(cache.shape, cache.dtype)),
        input_output_aliases={len(inputs) - 1: 1},
        name="cached_dilated_conv_step",
        **launch.pallas_call_options(),
    )(*inputs)
