"""Fast (cached) PixelCNN++ generation (Ramachandran et al. 2017) with the model's own weights.

The naive generator (`pixelcnn.make_naive_sampler`) reruns the whole network over the whole image for every pixel.
Here each layer keeps what its shifted conv still needs and computes each of its outputs once, on the 2-D caches of
common/nn/cached_conv.py:
  u  (vertical stream) once per row of its scale: a row cache [Ws, B, C] per down-shifted conv.
  ul (horizontal stream) once per pixel of its scale: a pixel ring [2, Ws + 1, B, C] per down-right conv; a
     pass's blocks at one scale are one step of the cached conv-stack kernel (kernels/cached_dilated_conv, cell
     "gated_resnet", the same step WaveNet's layers run as cell "gated"), their rings in one cache
     (`PixelRingLayout`).
  strided convs (down-sampling) keep the same cache of their input as a stride-1 conv and run only where they
     produce an output: every 2nd row (u) or every 2nd row and column (ul) of their input's scale (`run_every`).
  transposed convs (up-sampling) run when their input row / pixel is computed and cache the 2 x 2 block (2 rows
     for u) of outputs it covers, read at the next scale's positions (cache_every).
  scale s (0, 1, 2) runs at the full-resolution rows i with i % 2^s == 0 (and columns j % 2^s == 0 for ul): the
     paper's schedule, (cache_every, run_every) = (1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (4, 2), (2, 2), (2, 1).
Caches hold the inputs before concat_elu (elu(0) = 0, so a zero cache is the zero padding after it too), and every
conv computes exactly the full network's value at that position (no approximation): the per-pixel parameters equal
the naive generator's to float rounding, and the same key draws the same images.

Each conv's weight-normalised kernel is computed once per run (`freeze`), then the whole generation is
`cached_conv.generate_in_raster_order` with a row step (the u row), a pixel step (the ul pixel and the head) and
the logistic mixture as its sampling hook. Dropout is off. Every buffer is position-major (width before batch),
so a row's convs are one matmul per tap on contiguous slices: batch-major buffers made each pixel touch B
scattered pieces, and the per-pixel cost grew faster than the batch.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from common.nn import cached_conv, logistic_mixture
from common.nn.cached_conv import (
    ConvWeights,
    PixelRingLayout,
    pixel_ring_window,
    pixel_ring_write,
    row_cache_conv,
    run_every,
    tap_weights,
    window_conv,
)
from common.nn.pixelcnn import (
    PixelCNNPlusPlus,
    apply_conv,
    check_num_pixels,
    concat_elu,
    crop_transposed,
    pixel_noise,
    raster_to_images,
)
from kernels.backend import resolve_impl
from kernels.cached_dilated_conv import StackWeights, cached_dilated_conv_step

# ----- weights ------------------------------------------------------------------------------------------------


def conv_weights(conv) -> ConvWeights:
    """A WeightNormConv (or the ShiftedConv around it) -> its kernel and bias."""
    conv = getattr(conv, "conv", conv)
    return {"kernel": conv.kernel(), "bias": conv.bias.value}


def freeze_block(block) -> dict:
    """A GatedResnet -> its convs' kernels and biases (aux_in None where it has no aux input)."""
    aux = conv_weights(block.aux_in) if block.aux_in is not None else None
    return {"conv_in": conv_weights(block.conv_in), "aux_in": aux, "conv_out": conv_weights(block.conv_out)}


def block_stack(blocks: list[dict]) -> dict:
    """A scale's horizontal-stream blocks (freeze_block's) as one stack for the cached step kernel: "weights" (both
    2 x 2 convs split into past taps and current input, kernels/cached_dilated_conv's gated_resnet cell) and the aux
    projections stacked, "aux_kernel" [L, 2A, F], "aux_bias" [L, F]."""

    def stacked(conv, groups):
        past, current = zip(*(tap_weights(b[conv]["kernel"], groups) for b in blocks), strict=True)
        bias = jnp.stack([b[conv]["bias"].reshape(groups, -1) for b in blocks])
        return jnp.stack(past), jnp.stack(current), bias

    past, current, bias = stacked("conv_in", 1)
    out_past, out_current, out_bias = stacked("conv_out", 2)
    weights = StackWeights(past, current, bias, out_past=out_past, out_current=out_current, out_bias=out_bias)
    return {
        "weights": weights,
        "aux_kernel": jnp.stack([b["aux_in"]["kernel"][0, 0] for b in blocks]),
        "aux_bias": jnp.stack([b["aux_in"]["bias"] for b in blocks]),
    }


def freeze(model: PixelCNNPlusPlus) -> dict:
    """Every conv's kernel and bias, in the model's layout (lists per scale and block), and the horizontal
    stream's blocks as one stack per scale and pass ("ul_down_stack", "ul_up_stack": `block_stack`)."""

    def blocks(scales):
        return [[freeze_block(b) for b in scale] for scale in scales]

    return {
        "u_init": conv_weights(model.u_init),
        "ul_init_up": conv_weights(model.ul_init_up),
        "ul_init_left": conv_weights(model.ul_init_left),
        "down_u": blocks(model.down_u),
        "up_u": blocks(model.up_u),
        "ul_down_stack": [block_stack(scale) for scale in blocks(model.down_ul)],
        "ul_up_stack": [block_stack(scale) for scale in blocks(model.up_ul)],
        "downsample_u": [conv_weights(c) for c in model.downsample_u],
        "downsample_ul": [conv_weights(c) for c in model.downsample_ul],
        "upsample_u": [conv_weights(c) for c in model.upsample_u],
        "upsample_ul": [conv_weights(c) for c in model.upsample_ul],
        "head": conv_weights(model.head),
    }


# ----- one row of the vertical stream ---------------------------------------------------------------------------


def transposed_row(conv: ConvWeights, row: jax.Array) -> jax.Array:
    """The down-shifted transposed (up-sampling) conv's outputs that row r [W, B, F] covers: rows 2r, 2r + 1
    [2, 2W, B, F] (a height-2, stride-2 kernel: no other input row reaches them)."""
    y = apply_conv(row.transpose(1, 0, 2)[:, None], conv["kernel"], conv["bias"], stride=2, transpose=True)
    return crop_transposed(y, "down", conv["kernel"].shape[1], 2, 2 * row.shape[0]).transpose(1, 2, 0, 3)


def one_by_one(conv: ConvWeights, x: jax.Array) -> jax.Array:
    """A 1 x 1 conv on [..., in] -> [..., out]."""
    return x @ conv["kernel"][0, 0] + conv["bias"]


def block_row(block: dict, cache: dict, x: jax.Array, aux: jax.Array | None) -> tuple[jax.Array, dict]:
    """GatedResnet ("down") at one row: x [W, B, F], aux [W, B, A] or None; cache {"x", "h"}: the previous row of
    both convs' inputs (before concat_elu). Returns (output row [W, B, F], cache holding this row)."""
    hidden = row_cache_conv(block["conv_in"], concat_elu(cache["x"]), concat_elu(x))
    if aux is not None:
        hidden = hidden + one_by_one(block["aux_in"], concat_elu(aux))
    a, b = jnp.split(row_cache_conv(block["conv_out"], concat_elu(cache["h"]), concat_elu(hidden)), 2, axis=-1)
    return x + a * jax.nn.sigmoid(b), {"x": x, "h": hidden}


# ----- one pixel of the horizontal stream -----------------------------------------------------------------------


def transposed_pixel(conv: ConvWeights, x: jax.Array) -> jax.Array:
    """The down-right transposed (up-sampling) conv's outputs that input pixel (r, c) [B, F] covers:
    (2r .. 2r + 1, 2c .. 2c + 1) [2, 2, B, F] (a 2 x 2, stride-2 kernel: no other input pixel reaches them)."""
    y = apply_conv(x[:, None, None], conv["kernel"], conv["bias"], stride=2, transpose=True)
    return crop_transposed(y, "down_right", conv["kernel"].shape[1], 2, 2).transpose(1, 2, 0, 3)


def stack_pixel(stack: dict, cache: jax.Array, row, col, x: jax.Array, aux: jax.Array, impl: str):
    """A scale's stack of GatedResnet ("down_right") blocks at one pixel, as one cached step
    (kernels/cached_dilated_conv, cell "gated_resnet"): x [B, F] the first block's input, aux [L, B, A] each
    block's aux input, cache [slots, B, F] the blocks' pixel rings (`PixelRingLayout`, two convs per block).
    Returns (every block's output [L, B, F], the cache with this pixel written)."""
    layers = aux.shape[0]
    rings = PixelRingLayout(cache.shape[0] // (4 * layers) - 1, layers, convs_per_layer=2)
    aux = jnp.einsum("lba,laf->lbf", concat_elu(aux), stack["aux_kernel"]) + stack["aux_bias"][:, None]
    return cached_dilated_conv_step(
        x,
        cache,
        rings.read_slots(row, col),
        rings.write_slots(row, col),
        stack["weights"],
        aux[:, None],  # [L, 1, B, F]: the conv_in group's per-pixel bias
        cell="gated_resnet",
        impl=impl,
    )


# ----- the generator --------------------------------------------------------------------------------------------


def init_state(model: PixelCNNPlusPlus, batch: int) -> dict:
    """All caches at the start (zeros: the convs' padding) and the canvas: the image in [-1, 1] with its channel
    of ones, padded by 2 rows on top and a column on each side [H + 2, W + 2, B, C + 1]. Every buffer is
    position-major ([..., W, B, C]): what one pixel reads or writes is one contiguous block whatever the batch."""
    height, width, channels = model.image_shape
    filters = model.u_init.conv.bias.value.shape[0]
    scales = range(model.NUM_SCALES)

    def rows(s):
        return jnp.zeros((width >> s, batch, filters))

    def ring(s):
        return cached_conv.init_pixel_ring(width >> s, batch, filters)

    def stack_rings(s, blocks):  # one cache for a stack of blocks (two convs each): PixelRingLayout
        return jnp.zeros((PixelRingLayout(width >> s, blocks, 2).num_slots, batch, filters))

    def caches(make, counts):
        return [[{"x": make(s), "h": make(s)} for _ in range(counts[s])] for s in scales]

    down = [len(blocks) for blocks in model.down_u]
    up = [len(blocks) for blocks in model.up_u][::-1]  # the model lists the up pass coarsest scale first
    canvas = jnp.zeros((height + 2, width + 2, batch, channels + 1)).at[2:, 1:-1, :, channels].set(1.0)
    return {
        "canvas": canvas,
        "u_down": caches(rows, down),
        "u_up": caches(rows, up),
        "u_down_out": [[rows(s) for _ in range(down[s])] for s in scales],
        "u_up_out": [[rows(s) for _ in range(up[s])] for s in scales],
        "u_downsample": [rows(s) for s in scales[:-1]],
        "u_upsampled": [jnp.zeros((2, width >> s, batch, filters)) for s in scales[:-1]],
        "ul_down": [stack_rings(s, down[s]) for s in scales],
        "ul_up": [stack_rings(s, up[s]) for s in scales],
        "ul_downsample": [ring(s) for s in scales[:-1]],
        "ul_upsampled": [jnp.zeros((2, width >> s, batch, filters)) for s in scales[:-1]],
    }


def u_rows(weights: dict, state: dict, scale: int, row, entry: jax.Array) -> dict:
    """The vertical stream's row `row` of `scale` (and, on even rows, the coarser scales' next row): down blocks,
    down-sampling, the coarser scale, up blocks; stores the block outputs the horizontal stream reads.
    entry [Ws, B, F]: this scale's first u (u_init's row, or the down-sampling conv's)."""
    skips, u = [entry], entry
    for b, block in enumerate(weights["down_u"][scale]):
        u, state["u_down"][scale][b] = block_row(block, state["u_down"][scale][b], u, None)
        skips.append(u)
    state["u_down_out"][scale] = skips[1:]
    if scale + 1 < len(weights["down_u"]):
        previous, state["u_downsample"][scale] = state["u_downsample"][scale], u
        last = u

        def coarser(state):
            entry = row_cache_conv(weights["downsample_u"][scale], previous, last, stride=2)
            return u_rows(weights, state, scale + 1, row // 2, entry)

        state = run_every(2, coarser, state, row)
        u = jax.lax.dynamic_index_in_dim(state["u_upsampled"][scale], row % 2, keepdims=False)
    else:
        u = skips.pop()
    outputs, up = [], len(weights["up_u"]) - 1 - scale  # the up pass is listed coarsest scale first
    for b, block in enumerate(weights["up_u"][up]):
        u, state["u_up"][scale][b] = block_row(block, state["u_up"][scale][b], u, skips.pop())
        outputs.append(u)
    state["u_up_out"][scale] = outputs
    if scale:
        state["u_upsampled"][scale - 1] = transposed_row(weights["upsample_u"][up], u)
    return state


def ul_pixel(weights: dict, state: dict, scale: int, row, col, entry: jax.Array, impl: str) -> tuple[dict, jax.Array]:
    """The horizontal stream at pixel (row, col) of `scale` (and, at even row and column, the coarser scales'):
    entry [B, F] -> (state, this scale's last up-block output [B, F]). Each pass's blocks are one cached step
    (`stack_pixel`, run by `impl`)."""

    def at_col(x):  # a stored row [Ws, B, D] -> this column [B, D]
        return jax.lax.dynamic_index_in_dim(x, col, keepdims=False)

    aux = jnp.stack([at_col(out) for out in state["u_down_out"][scale]])  # [L, B, F]
    down = weights["ul_down_stack"][scale]
    outputs, state["ul_down"][scale] = stack_pixel(down, state["ul_down"][scale], row, col, entry, aux, impl)
    skips = [entry, *outputs]
    ul = skips[-1]
    if scale + 1 < len(weights["ul_down_stack"]):
        state["ul_downsample"][scale] = pixel_ring_write(state["ul_downsample"][scale], row, col, ul)

        def coarser(state):
            window = pixel_ring_window(state["ul_downsample"][scale], row, col)
            entry = window_conv(weights["downsample_ul"][scale], window)
            return ul_pixel(weights, state, scale + 1, row // 2, col // 2, entry, impl)[0]

        state = run_every(2, coarser, state, row, col)
        upsampled = jax.lax.dynamic_index_in_dim(state["ul_upsampled"][scale], row % 2, keepdims=False)
        ul = at_col(upsampled)
    else:
        ul = skips.pop()
    up = len(weights["ul_up_stack"]) - 1 - scale
    aux = jnp.stack([jnp.concatenate([at_col(out), skips.pop()], axis=-1) for out in state["u_up_out"][scale]])
    up_stack = weights["ul_up_stack"][up]
    outputs, state["ul_up"][scale] = stack_pixel(up_stack, state["ul_up"][scale], row, col, ul, aux, impl)
    ul = outputs[-1]
    if scale:
        covered = transposed_pixel(weights["upsample_ul"][up], ul)  # [2, 2, B, F]
        target = state["ul_upsampled"][scale - 1]
        state["ul_upsampled"][scale - 1] = jax.lax.dynamic_update_slice(target, covered, (0, 2 * col, 0, 0))
    return state, ul


def first_u_row(weights: dict, canvas: jax.Array, row) -> jax.Array:
    """u before the blocks at full-resolution row `row`: u_init over image rows row - 2, row - 1 (down_shift);
    zeros on row 0. canvas [H + 2, W + 2, B, C + 1] -> [W, B, F]."""
    window = jax.lax.dynamic_slice_in_dim(canvas, row, 2)  # [2, W + 2, B, C + 1]
    return cached_conv.valid_conv_at_row(weights["u_init"], window) * (row > 0)


def first_ul_pixel(weights: dict, canvas: jax.Array, row, col) -> jax.Array:
    """ul before the blocks at (row, col): u_init's up part at (row - 1, col) plus its left part at (row, col - 1),
    each zero where the shift brings in padding. -> [B, F]."""
    _, _, batch, channels = canvas.shape
    above = jax.lax.dynamic_slice(canvas, (row + 1, col, 0, 0), (1, 3, batch, channels))  # image row - 1, col +- 1
    left = jax.lax.dynamic_slice(canvas, (row + 1, col, 0, 0), (2, 1, batch, channels))  # rows row - 1, row; col - 1
    up_part = window_conv(weights["ul_init_up"], above) * (row > 0)
    return up_part + window_conv(weights["ul_init_left"], left) * (col > 0)


def make_cached_sampler(model: PixelCNNPlusPlus, batch: int, num_pixels: int | None = None, impl: str = "auto"):
    """The fast generator: the same interface, noise and results as `pixelcnn.make_naive_sampler`.

    Returns run(key) -> (images int32 [B, H, W, C], params float32 [B, H, W, P]); pixel t = i * W + j is drawn
    with `pixel_noise(key, t, ...)` from its parameters. num_pixels (default H * W): stop after that many pixels
    in raster order (the rest left 0), to time part of a large image; the last started row is run to its end.
    impl: how the horizontal stream's block stacks run (kernels/cached_dilated_conv: "xla", "pallas" or "auto").
    """
    num_pixels = check_num_pixels(model, num_pixels)
    resolve_impl(impl)  # an unknown name fails here, naming the valid ones
    model.eval()
    graphdef, params_state = nnx.split(model)
    _, width, channels = model.image_shape
    num_mix = model.nr_logistic_mix

    @jax.jit
    def run(params_state, key):
        weights = freeze(nnx.merge(graphdef, params_state))

        def u_row(state, row):  # once per row, before its pixels: no per-pixel branch over the whole state
            return u_rows(weights, state, 0, row, first_u_row(weights, state["canvas"], row))

        def ul_pixel_params(state, row, col):
            entry = first_ul_pixel(weights, state["canvas"], row, col)
            state, ul = ul_pixel(weights, state, 0, row, col, entry, impl)
            return state, one_by_one(weights["head"], jax.nn.elu(ul))  # [B, P]

        def sample(pixel_params, t):
            return logistic_mixture.sample(pixel_params, pixel_noise(key, t, batch, channels, num_mix), channels)

        def feed(state, row, col, pixel):
            unit = logistic_mixture.pixels_to_unit(pixel)[None, None]  # [1, 1, B, C]
            state["canvas"] = jax.lax.dynamic_update_slice(state["canvas"], unit, (row + 2, col + 1, 0, 0))
            return state

        pixels, pixel_params = cached_conv.generate_in_raster_order(
            ul_pixel_params, sample, feed, init_state(model, batch), num_positions=num_pixels, width=width, row_fn=u_row
        )
        return raster_to_images(pixels, model.image_shape), raster_to_images(pixel_params, model.image_shape)

    return lambda key: run(params_state, key)
