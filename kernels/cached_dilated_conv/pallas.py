"""One cached generation step of a whole conv stack as a single Pallas kernel.

A generation step at small batch moves each layer's weights once and a few [B, C] activations: it is bound by
launch latency and weight bandwidth, not FLOPs (nv-wavenet reaches real time by running all layers of a step in
one persistent kernel). So one program runs every layer of the step: for each layer it reads the layer's past
taps from the cache, computes the layer's cell (layout.CELLS: WaveNet's gated unit and skips, relu, PixelCNN++'s
gated resnet block) and writes its convs' current inputs back into the same cache buffer
(`input_output_aliases`: the cache is updated in place, never copied). Rows a step does not write keep their
contents. The batch is padded to a multiple of `KernelConfig.min_tile` rows (tensor-core dots need 16 on GPU).

Reads and writes per layer follow the ring contract (layout.py): a layer reads its taps before it writes, and no
conv reads another conv's write row, so reading the input ref and writing the aliased output ref give the
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
from kernels.cached_dilated_conv.layout import CELLS, StackWeights


def _dot(a, b):
    """a [M, K] times b [N, K] transposed -> [M, N] in float32 (weights are stored [outputs, inputs])."""
    return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def _elu(v):
    """elu without expm1 (exp and select lower everywhere): v > 0 ? v : exp(v) - 1."""
    return jnp.where(v > 0, v, jnp.exp(jnp.minimum(v, 0.0)) - 1.0)


def _tap_product(value, weight_ref, layer, group, tap: int, channels: int, input_map: str):
    """One tap's share of a pre-activation: f(value) [B, C] times its columns of weight_ref[layer, group] -> [B, R].
    concat_elu is two products, elu(v) and elu(-v) against the two halves of the tap's 2C columns (no value is
    concatenated or sliced in the kernel)."""
    if input_map == "identity":
        return _dot(value, weight_ref[layer, group, :, pl.ds(tap * channels, channels)])
    start = 2 * tap * channels
    positive = _dot(_elu(value), weight_ref[layer, group, :, pl.ds(start, channels)])
    return positive + _dot(_elu(-value), weight_ref[layer, group, :, pl.ds(start + channels, channels)])


def _conv(current, taps, past_ref, current_ref, bias_ref, layer, groups, channels, input_map, extra=None):
    """A conv's pre-activation at this step, one [B, R] per group: past taps, the current input, the bias."""
    out = []
    for group in range(groups):
        acc = _tap_product(current, current_ref, layer, group, 0, channels, input_map) + bias_ref[layer, group][None]
        if extra is not None:
            acc = acc + extra[layer, group]
        for j, tap in enumerate(taps):
            acc = acc + _tap_product(tap, past_ref, layer, group, j, channels, input_map)
        out.append(acc)
    return out


def _kernel(*refs, layers: int, taps: int, channels: int, cell: str):
    spec = CELLS[cell]
    convs, input_map = spec.convs, spec.input_map
    read_ref, write_ref, x_ref, past_ref, current_ref, bias_ref, gate_bias_ref = refs[:7]
    cell_refs = refs[7 : 7 + len(CELL_WEIGHTS[cell])]
    cache_ref, out_ref, new_cache_ref = refs[7 + len(CELL_WEIGHTS[cell]) :]
    if cell == "gated":
        residual_ref, residual_bias_ref, skip_ref, skip_bias_ref = cell_refs
        width = residual_ref.shape[2]
        skip = skip_bias_ref[...][None, :].astype(jnp.float32)
    x = x_ref[...].astype(jnp.float32)

    def read(layer, conv):
        first = (layer * convs + conv) * taps
        return [cache_ref[read_ref[first + j]].astype(jnp.float32) for j in range(taps)]

    def write(layer, conv, value):
        new_cache_ref[write_ref[layer * convs + conv]] = value.astype(new_cache_ref.dtype)

    for layer in range(layers):
        tap_rows = [read(layer, conv) for conv in range(convs)]  # every read of the layer before its writes
        write(layer, 0, x)
        a = _conv(
            x, tap_rows[0], past_ref, current_ref, bias_ref, layer, spec.groups[0], channels, input_map, gate_bias_ref
        )
        if cell == "relu":
            x = jnp.maximum(a[0], 0.0)
            continue
        if cell == "gated_resnet":
            out_past_ref, out_current_ref, out_bias_ref = cell_refs
            hidden = a[0]
            write(layer, 1, hidden)
            a = _conv(hidden, tap_rows[1], out_past_ref, out_current_ref, out_bias_ref, layer, 2, channels, input_map)
            x = x + a[0] * jax.nn.sigmoid(a[1])
            out_ref[layer] = x.astype(out_ref.dtype)
            continue
        z = jnp.tanh(a[0]) * jax.nn.sigmoid(a[1])
        skip = skip + _dot(z, skip_ref[:, pl.ds(layer * width, width)])
        if layer + 1 < layers:
            x = x + _dot(z, residual_ref[layer]) + residual_bias_ref[layer][None, :]
    if cell == "gated":
        out_ref[...] = skip.astype(out_ref.dtype)
    elif cell == "relu":
        out_ref[...] = x.astype(out_ref.dtype)


def cached_dilated_conv_step_pallas(
    x: jax.Array,
    cache: jax.Array,
    read_slots: jax.Array,
    write_slots: jax.Array,
    weights: StackWeights,
    gate_bias: jax.Array | None = None,
    *,
    cell: str = "gated",
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
        _check_gpu_tiles(weights, cell)
    batch = x.shape[0]
    padded = padded_batch(batch, launch.config)
    if padded != batch:
        pad = padded - batch
        x = jnp.pad(x, ((0, pad), (0, 0)))
        cache = jnp.pad(cache, ((0, 0), (0, pad), (0, 0)))
        if gate_bias is not None:
            gate_bias = jnp.pad(gate_bias, ((0, 0), (0, 0), (0, pad), (0, 0)))
    out, cache = _launch(x, cache, read_slots, write_slots, weights, gate_bias, cell, launch)
    if padded != batch:
        out, cache = layout.first_rows(out, batch, cell), cache[:, :batch]
    return out, cache


def gpu_tile_misfits(weights: StackWeights, cell: str) -> dict[str, int]:
    """The channel counts a GPU launch cannot tile: Triton tiles are powers of two, its dots need 16 per edge."""
    _, _, width, inputs = weights.current.shape
    sizes = {"channels": inputs // CELLS[cell].input_factor, "R": width}
    if cell == "gated":
        sizes["skip channels"] = weights.skip.shape[0]
    return {name: n for name, n in sizes.items() if n < MIN_TILE["gpu"] or not is_power_of_two(n)}


def _check_gpu_tiles(weights: StackWeights, cell: str) -> None:
    bad = gpu_tile_misfits(weights, cell)
    if bad:
        raise ValueError(f"on GPU the kernel needs powers of two >= 16, got {bad}; use impl='xla' for these sizes")


def auto_takes_kernel(platform: str) -> bool:
    """Whether impl="auto" runs the kernel on `platform` ('gpu' | 'tpu'). Not on GPU: on an H200 (JAX 0.11.2,
    docs/halo_attention_gpu.md, "Both kernels on an H200") WaveNet's 20-layer step took 138-149 us at batch 1-16
    against XLA's 60-106 us, and a 5-block PixelCNN++ stack compiled for tens of seconds. TPU: unmeasured."""
    return platform != "gpu"


def padded_batch(batch: int, config: KernelConfig) -> int:
    """The batch rounded up to whole tiles of config.min_tile rows."""
    return -(-batch // config.min_tile) * config.min_tile


CELL_WEIGHTS = {  # the cell's own weight arrays, in the kernel's ref order after the common ones
    "gated": ("residual", "residual_bias", "skip", "skip_bias"),
    "relu": (),
    "gated_resnet": ("out_past", "out_current", "out_bias"),
}


def _launch(x, cache, read_slots, write_slots, weights: StackWeights, gate_bias, cell: str, launch: Launch):
    layers, groups, width, _ = weights.current.shape
    if gate_bias is None:
        gate_bias = jnp.zeros((layers, groups, x.shape[0], width), jnp.float32)
    inputs = [
        read_slots.reshape(-1).astype(jnp.int32),
        write_slots.reshape(-1).astype(jnp.int32),
        x,
        weights.past,
        weights.current,
        weights.bias,
        gate_bias,
    ]
    inputs += [getattr(weights, name) for name in CELL_WEIGHTS[cell]]
    inputs.append(cache)
    out_shape = layout.output_shape(x, weights, cell)
    kernel = functools.partial(
        _kernel, layers=layers, taps=layout.past_taps(read_slots, cell), channels=x.shape[1], cell=cell
    )
    return pl.pallas_call(
        kernel,
        out_shape=(jax.ShapeDtypeStruct(out_shape, x.dtype), jax.ShapeDtypeStruct(cache.shape, cache.dtype)),
        input_output_aliases={len(inputs) - 1: 1},
        name="cached_dilated_conv_step",
        **launch.pallas_call_options(),
    )(*inputs)
