"""Fast (cached) PixelCNN++ generation (Ramachandran et al. 2017) with the model's own weights.

The naive generator (`pixelcnn.make_naive_sampler`) reruns the whole network over the whole image for every pixel.
Here each layer keeps what its shifted conv still needs and computes each of its outputs once, on the 2-D caches of
common/nn/cached_conv.py:
  u  (vertical stream) once per row of its scale: a row cache [Ws, B, C] per down-shifted conv.
  ul (horizontal stream) once per pixel of its scale: a pixel ring [2, Ws + 1, B, C] per down-right conv.
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
    pixel_ring_window,
    pixel_ring_write,
    row_cache_conv,
    run_every,
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

# ----- weights ------------------------------------------------------------------------------------------------


def conv_weights(conv) -> ConvWeights:
    """A WeightNormConv (or the ShiftedConv around it) -> its kernel and bias."""
    conv = getattr(conv, "conv", conv)
    return {"kernel": conv.kernel(), "bias": conv.bias.value}


def freeze_block(block) -> dict:
    """A GatedResnet -> its convs' kernels and biases (aux_in None where it has no aux input)."""
    aux = conv_weights(block.aux_in) if block.aux_in is not None else None
    return {"conv_in": conv_weights(block.conv_in), "aux_in": aux, "conv_out": conv_weights(block.conv_out)}


def freeze(model: PixelCNNPlusPlus) -> dict:
    """Every conv's kernel and bias, in the model's layout (lists per scale and block)."""

    def blocks(scales):
        return [[freeze_block(b) for b in scale] for scale in scales]

    return {
        "u_init": conv_weights(model.u_init),
        "ul_init_up": conv_weights(model.ul_init_up),
        "ul_init_left": conv_weights(model.ul_init_left),
        "down_u": blocks(model.down_u),
        "down_ul": blocks(model.down_ul),
        "up_u": blocks(model.up_u),
        "up_ul": blocks(model.up_ul),
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


def block_pixel(block: dict, cache: dict, row, col, x: jax.Array, aux: jax.Array) -> tuple[jax.Array, dict]:
    """GatedResnet ("down_right") at one pixel: x [B, F], aux [B, A]; cache {"x", "h"}: rings of both convs'
    inputs. Returns (output [B, F], cache with this pixel written)."""
    ring_x = pixel_ring_write(cache["x"], row, col, x)
    hidden = window_conv(block["conv_in"], concat_elu(pixel_ring_window(ring_x, row, col)))
    hidden = hidden + one_by_one(block["aux_in"], concat_elu(aux))
    ring_h = pixel_ring_write(cache["h"], row, col, hidden)
    a, b = jnp.split(window_conv(block["conv_out"], concat_elu(pixel_ring_window(ring_h, row, col))), 2, axis=-1)
    return x + a * jax.nn.sigmoid(b), {"x": ring_x, "h": ring_h}


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
        "ul_down": caches(ring, down),
        "ul_up": caches(ring, up),
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


def ul_pixel(weights: dict, state: dict, scale: int, row, col, entry: jax.Array) -> tuple[dict, jax.Array]:
    """The horizontal stream at pixel (row, col) of `scale` (and, at even row and column, the coarser scales'):
    entry [B, F] -> (state, this scale's last up-block output [B, F])."""

    def at_col(x):  # a stored row [Ws, B, D] -> this column [B, D]
        return jax.lax.dynamic_index_in_dim(x, col, keepdims=False)

    skips, ul = [entry], entry
    for b, block in enumerate(weights["down_ul"][scale]):
        aux = at_col(state["u_down_out"][scale][b])
        ul, state["ul_down"][scale][b] = block_pixel(block, state["ul_down"][scale][b], row, col, ul, aux)
        skips.append(ul)
    if scale + 1 < len(weights["down_ul"]):
        state["ul_downsample"][scale] = pixel_ring_write(state["ul_downsample"][scale], row, col, ul)

        def coarser(state):
            window = pixel_ring_window(state["ul_downsample"][scale], row, col)
            entry = window_conv(weights["downsample_ul"][scale], window)
            return ul_pixel(weights, state, scale + 1, row // 2, col // 2, entry)[0]

        state = run_every(2, coarser, state, row, col)
        upsampled = jax.lax.dynamic_index_in_dim(state["ul_upsampled"][scale], row % 2, keepdims=False)
        ul = at_col(upsampled)
    else:
        ul = skips.pop()
    up = len(weights["up_ul"]) - 1 - scale
    for b, block in enumerate(weights["up_ul"][up]):
        aux = jnp.concatenate([at_col(state["u_up_out"][scale][b]), skips.pop()], axis=-1)
        ul, state["ul_up"][scale][b] = block_pixel(block, state["ul_up"][scale][b], row, col, ul, aux)
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


def make_cached_sampler(model: PixelCNNPlusPlus, batch: int, num_pixels: int | None = None):
    """The fast generator: the same interface, noise and results as `pixelcnn.make_naive_sampler`.

    Returns run(key) -> (images int32 [B, H, W, C], params float32 [B, H, W, P]); pixel t = i * W + j is drawn
    with `pixel_noise(key, t, ...)` from its parameters. num_pixels (default H * W): stop after that many pixels
    in raster order (the rest left 0), to time part of a large image; the last started row is run to its end.
    """
    num_pixels = check_num_pixels(model, num_pixels)
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
            state, ul = ul_pixel(weights, state, 0, row, col, first_ul_pixel(weights, state["canvas"], row, col))
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
