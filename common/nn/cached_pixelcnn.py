"""Fast (cached) PixelCNN++ generation (Ramachandran et al. 2017) with the model's own weights.

The naive generator (`pixelcnn.make_naive_sampler`) reruns the whole network over the whole image for every pixel.
Here each layer keeps what its shifted conv still needs and computes each of its outputs once:
  u  (vertical stream) once per row of its scale. A down-shifted conv of height 2 needs its input's previous row:
     a row cache [B, Ws, C] per conv (the new row replaces it after use).
  ul (horizontal stream) once per pixel of its scale. A down-right 2 x 2 conv needs the previous row's and the
     current row's two columns (c - 1, c): a ring of 2 rows [B, 2, Ws + 1, C] per conv, row r in slot r % 2, one
     zero column on the left (the conv's left padding). Slots start as zeros: the top padding.
  strided convs (down-sampling) keep the same cache of their input as a stride-1 conv and run only where they
     produce an output: every 2nd row (u) or every 2nd row and column (ul) of their input's scale (run_every).
  transposed convs (up-sampling) run when their input row / pixel is computed and cache the 2 x 2 block (2 rows
     for u) of outputs it covers, read at the next scale's positions (cache_every).
  scale s (0, 1, 2) runs at the full-resolution rows i with i % 2^s == 0 (and columns j % 2^s == 0 for ul): the
     paper's schedule, (cache_every, run_every) = (1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (4, 2), (2, 2), (2, 1).
Caches hold the inputs before concat_elu (elu(0) = 0, so a zero cache is the zero padding after it too), and every
conv computes exactly the full network's value at that position (no approximation): the per-pixel parameters equal
the naive generator's to float rounding, and the same key draws the same images.

Each conv's weight-normalised kernel is computed once per run (`freeze`), then the whole generation is one
`lax.scan` over pixels in raster order; the u rows and the coarser scales run under `lax.cond`. Dropout is off.

`cached_conv.RingLayout` reads taps x[t - j d] of one sequence; a 2 x 2 window in raster order reads t - W' - 1,
t - W', t - 1 and t (W' the padded width), no single dilation, and the vertical stream advances by whole rows. So
the rings here are indexed by (row, column): the same zero-started buffer, with rows of the image width.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from common.nn import logistic_mixture
from common.nn.pixelcnn import (
    PixelCNNPlusPlus,
    apply_conv,
    check_num_pixels,
    concat_elu,
    crop_transposed,
    pixel_noise,
)

Conv = dict  # {"kernel": [kh, kw, in, out], "bias": [out]}


# ----- weights ------------------------------------------------------------------------------------------------


def conv_weights(conv) -> Conv:
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


def down_row(conv: Conv, previous: jax.Array, current: jax.Array, *, stride: int = 1) -> jax.Array:
    """A down-shifted conv (height 2, odd width) at one output row: its input's rows r - 1 and r [B, W, C] ->
    [B, W / stride, F]. With stride 2 it is the down-sampling conv's row r / 2 (run on even rows r only)."""
    window = jnp.stack([previous, current], axis=1)  # [B, 2, W, C]
    half = (conv["kernel"].shape[1] - 1) // 2
    window = jnp.pad(window, ((0, 0), (0, 0), (half, half), (0, 0)))
    return apply_conv(window, conv["kernel"], conv["bias"], stride=stride)[:, 0]


def transposed_row(conv: Conv, row: jax.Array) -> jax.Array:
    """The down-shifted transposed (up-sampling) conv's outputs that row r [B, W, F] covers: rows 2r, 2r + 1
    [B, 2, 2W, F] (a height-2, stride-2 kernel: no other input row reaches them)."""
    y = apply_conv(row[:, None], conv["kernel"], conv["bias"], stride=2, transpose=True)
    return crop_transposed(y, "down", conv["kernel"].shape[1], 2, 2 * row.shape[1])


def one_by_one(conv: Conv, x: jax.Array) -> jax.Array:
    """A 1 x 1 conv on [..., in] -> [..., out]."""
    return x @ conv["kernel"][0, 0] + conv["bias"]


def block_row(block: dict, cache: dict, x: jax.Array, aux: jax.Array | None) -> tuple[jax.Array, dict]:
    """GatedResnet ("down") at one row: x [B, W, F], aux [B, W, A] or None; cache {"x", "h"}: the previous row of
    both convs' inputs (before concat_elu). Returns (output row [B, W, F], cache holding this row)."""
    hidden = down_row(block["conv_in"], concat_elu(cache["x"]), concat_elu(x))
    if aux is not None:
        hidden = hidden + one_by_one(block["aux_in"], concat_elu(aux))
    a, b = jnp.split(down_row(block["conv_out"], concat_elu(cache["h"]), concat_elu(hidden)), 2, axis=-1)
    return x + a * jax.nn.sigmoid(b), {"x": x, "h": hidden}


# ----- one pixel of the horizontal stream -----------------------------------------------------------------------


def ring_write(ring: jax.Array, row: jax.Array, col: jax.Array, value: jax.Array) -> jax.Array:
    """Stores input (row, col) [B, C] in the 2-row ring [B, 2, W + 1, C] (slot row % 2, column col + 1)."""
    return jax.lax.dynamic_update_slice(ring, value[:, None, None], (0, row % 2, col + 1, 0))


def ring_window(ring: jax.Array, row: jax.Array, col: jax.Array) -> jax.Array:
    """The 2 x 2 window a down-right conv reads at (row, col): inputs (row - 1 .. row, col - 1 .. col) [B, 2, 2, C]."""
    batch, _, _, channels = ring.shape
    above = jax.lax.dynamic_slice(ring, (0, (row + 1) % 2, col, 0), (batch, 1, 2, channels))
    here = jax.lax.dynamic_slice(ring, (0, row % 2, col, 0), (batch, 1, 2, channels))
    return jnp.concatenate([above, here], axis=1)


def pixel_conv(conv: Conv, window: jax.Array) -> jax.Array:
    """A conv at one output position: its whole input window [B, kh, kw, C] -> [B, F] (stride plays no part)."""
    return jnp.einsum("bhwc,hwcf->bf", window, conv["kernel"]) + conv["bias"]


def transposed_pixel(conv: Conv, x: jax.Array) -> jax.Array:
    """The down-right transposed (up-sampling) conv's outputs that input pixel (r, c) [B, F] covers:
    (2r .. 2r + 1, 2c .. 2c + 1) [B, 2, 2, F] (a 2 x 2, stride-2 kernel: no other input pixel reaches them)."""
    y = apply_conv(x[:, None, None], conv["kernel"], conv["bias"], stride=2, transpose=True)
    return crop_transposed(y, "down_right", conv["kernel"].shape[1], 2, 2)


def block_pixel(block: dict, cache: dict, row, col, x: jax.Array, aux: jax.Array) -> tuple[jax.Array, dict]:
    """GatedResnet ("down_right") at one pixel: x [B, F], aux [B, A]; cache {"x", "h"}: rings of both convs'
    inputs. Returns (output [B, F], cache with this pixel written)."""
    ring_x = ring_write(cache["x"], row, col, x)
    hidden = pixel_conv(block["conv_in"], concat_elu(ring_window(ring_x, row, col)))
    hidden = hidden + one_by_one(block["aux_in"], concat_elu(aux))
    ring_h = ring_write(cache["h"], row, col, hidden)
    a, b = jnp.split(pixel_conv(block["conv_out"], concat_elu(ring_window(ring_h, row, col))), 2, axis=-1)
    return x + a * jax.nn.sigmoid(b), {"x": ring_x, "h": ring_h}


# ----- the generator --------------------------------------------------------------------------------------------


def init_state(model: PixelCNNPlusPlus, batch: int) -> dict:
    """All caches at the start (zeros: the convs' padding) and the canvas: the image in [-1, 1] with its channel
    of ones, padded by 2 rows on top and a column on each side [B, H + 2, W + 2, C + 1]."""
    height, width, channels = model.image_shape
    filters = model.u_init.conv.bias.value.shape[0]
    scales = range(model.NUM_SCALES)

    def rows(s):
        return jnp.zeros((batch, width >> s, filters))

    def ring(s):
        return jnp.zeros((batch, 2, (width >> s) + 1, filters))

    def caches(make, counts):
        return [[{"x": make(s), "h": make(s)} for _ in range(counts[s])] for s in scales]

    down = [len(blocks) for blocks in model.down_u]
    up = [len(blocks) for blocks in model.up_u][::-1]  # the model lists the up pass coarsest scale first
    canvas = jnp.zeros((batch, height + 2, width + 2, channels + 1)).at[:, 2:, 1:-1, channels].set(1.0)
    return {
        "canvas": canvas,
        "u_down": caches(rows, down),
        "u_up": caches(rows, up),
        "u_down_out": [[rows(s) for _ in range(down[s])] for s in scales],
        "u_up_out": [[rows(s) for _ in range(up[s])] for s in scales],
        "u_downsample": [rows(s) for s in scales[:-1]],
        "u_upsampled": [jnp.zeros((batch, 2, width >> s, filters)) for s in scales[:-1]],
        "ul_down": caches(ring, down),
        "ul_up": caches(ring, up),
        "ul_downsample": [ring(s) for s in scales[:-1]],
        "ul_upsampled": [jnp.zeros((batch, 2, width >> s, filters)) for s in scales[:-1]],
    }


def u_rows(weights: dict, state: dict, scale: int, row, entry: jax.Array) -> dict:
    """The vertical stream's row `row` of `scale` (and, on even rows, the coarser scales' next row): down blocks,
    down-sampling, the coarser scale, up blocks; stores the block outputs the horizontal stream reads.
    entry [B, Ws, F]: this scale's first u (u_init's row, or the down-sampling conv's)."""
    skips, u = [entry], entry
    for b, block in enumerate(weights["down_u"][scale]):
        u, state["u_down"][scale][b] = block_row(block, state["u_down"][scale][b], u, None)
        skips.append(u)
    state["u_down_out"][scale] = skips[1:]
    if scale + 1 < len(weights["down_u"]):
        previous, state["u_downsample"][scale] = state["u_downsample"][scale], u
        last = u

        def coarser(state):
            entry = down_row(weights["downsample_u"][scale], previous, last, stride=2)
            return u_rows(weights, state, scale + 1, row // 2, entry)

        state = jax.lax.cond(row % 2 == 0, coarser, lambda state: state, state)
        u = state["u_upsampled"][scale][:, row % 2]
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
    skips, ul = [entry], entry
    for b, block in enumerate(weights["down_ul"][scale]):
        aux = state["u_down_out"][scale][b][:, col]
        ul, state["ul_down"][scale][b] = block_pixel(block, state["ul_down"][scale][b], row, col, ul, aux)
        skips.append(ul)
    if scale + 1 < len(weights["down_ul"]):
        state["ul_downsample"][scale] = ring_write(state["ul_downsample"][scale], row, col, ul)

        def coarser(state):
            window = ring_window(state["ul_downsample"][scale], row, col)
            entry = pixel_conv(weights["downsample_ul"][scale], window)
            return ul_pixel(weights, state, scale + 1, row // 2, col // 2, entry)[0]

        state = jax.lax.cond((row % 2 == 0) & (col % 2 == 0), coarser, lambda state: state, state)
        ul = jax.lax.dynamic_index_in_dim(state["ul_upsampled"][scale][:, row % 2], col, axis=1, keepdims=False)
    else:
        ul = skips.pop()
    up = len(weights["up_ul"]) - 1 - scale
    for b, block in enumerate(weights["up_ul"][up]):
        u = state["u_up_out"][scale][b][:, col]
        aux = jnp.concatenate([u, skips.pop()], axis=-1)
        ul, state["ul_up"][scale][b] = block_pixel(block, state["ul_up"][scale][b], row, col, ul, aux)
    if scale:
        covered = transposed_pixel(weights["upsample_ul"][up], ul)  # [B, 2, 2, F]
        target = state["ul_upsampled"][scale - 1]
        state["ul_upsampled"][scale - 1] = jax.lax.dynamic_update_slice(target, covered, (0, 0, 2 * col, 0))
    return state, ul


def first_u_row(weights: dict, canvas: jax.Array, row) -> jax.Array:
    """u before the blocks at full-resolution row `row`: u_init over image rows row - 2, row - 1 (down_shift);
    zeros on row 0. canvas [B, H + 2, W + 2, C + 1] -> [B, W, F]."""
    batch, _, padded_width, channels = canvas.shape
    window = jax.lax.dynamic_slice(canvas, (0, row, 0, 0), (batch, 2, padded_width, channels))
    conv = weights["u_init"]
    return apply_conv(window, conv["kernel"], conv["bias"])[:, 0] * (row > 0)


def first_ul_pixel(weights: dict, canvas: jax.Array, row, col) -> jax.Array:
    """ul before the blocks at (row, col): u_init's up part at (row - 1, col) plus its left part at (row, col - 1),
    each zero where the shift brings in padding. -> [B, F]."""
    batch, _, _, channels = canvas.shape
    above = jax.lax.dynamic_slice(canvas, (0, row + 1, col, 0), (batch, 1, 3, channels))  # image row - 1, col +- 1
    left = jax.lax.dynamic_slice(canvas, (0, row + 1, col, 0), (batch, 2, 1, channels))  # rows row - 1, row; col - 1
    return pixel_conv(weights["ul_init_up"], above) * (row > 0) + pixel_conv(weights["ul_init_left"], left) * (col > 0)


def make_cached_sampler(model: PixelCNNPlusPlus, batch: int, num_pixels: int | None = None):
    """The fast generator: the same interface, noise and results as `pixelcnn.make_naive_sampler`.

    Returns run(key) -> (images int32 [B, H, W, C], params float32 [B, H, W, P]); pixel t = i * W + j is drawn
    with `pixel_noise(key, t, ...)` from its parameters. num_pixels (default H * W): stop after that many pixels
    in raster order (the rest left 0), to time part of a large image.
    """
    num_pixels = check_num_pixels(model, num_pixels)
    model.eval()
    graphdef, params_state = nnx.split(model)
    height, width, channels = model.image_shape
    num_mix = model.nr_logistic_mix
    num_params = logistic_mixture.num_params(channels, num_mix)

    @jax.jit
    def run(params_state, key):
        weights = freeze(nnx.merge(graphdef, params_state))

        def step(state, t):
            row, col = t // width, t % width

            def new_row(state):
                return u_rows(weights, state, 0, row, first_u_row(weights, state["canvas"], row))

            state = jax.lax.cond(col == 0, new_row, lambda state: state, state)
            entry = first_ul_pixel(weights, state["canvas"], row, col)
            state, ul = ul_pixel(weights, state, 0, row, col, entry)
            pixel_params = one_by_one(weights["head"], jax.nn.elu(ul))  # [B, P]
            pixel = logistic_mixture.sample(pixel_params, pixel_noise(key, t, batch, channels, num_mix), channels)
            unit = logistic_mixture.pixels_to_unit(pixel)[:, None, None]  # [B, 1, 1, C]
            state["canvas"] = jax.lax.dynamic_update_slice(state["canvas"], unit, (0, row + 2, col + 1, 0))
            return state, (pixel, pixel_params)

        steps = jnp.arange(num_pixels, dtype=jnp.int32)
        _, (pixels, pixel_params) = jax.lax.scan(step, init_state(model, batch), steps)

        def to_image(per_step, depth):  # [T, B, D] -> [B, H, W, D], positions past num_pixels 0
            full = jnp.zeros((height * width, batch, depth), per_step.dtype).at[:num_pixels].set(per_step)
            return full.reshape(height, width, batch, depth).transpose(2, 0, 1, 3)

        return to_image(pixels, channels), to_image(pixel_params, num_params)

    return lambda key: run(params_state, key)
