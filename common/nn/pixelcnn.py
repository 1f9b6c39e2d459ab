"""PixelCNN++ (Salimans et al. 2017): an autoregressive image model over pixels in raster order.

Two streams keep the model causal without masks (van den Oord et al.'s blind-spot fix):
  u   ("up" / vertical) sees only the rows above the current pixel: down-shifted convs of height 2, width 3.
  ul  ("up-left" / horizontal) sees the rows above and the pixels to the left in the current row:
      down-right-shifted convs of 2 x 2, fed with u.
The input is shifted once at the start (`down_shift`, `right_shift`), so the output at (i, j) never sees pixel
(i, j) itself. The network is a U-net over 3 scales: nr_resnet gated resnet blocks per scale on the way down
(stride-2 convs between scales), nr_resnet + 1 on the way up (stride-2 transposed convs), each up block fed the
matching down block's output (the skip connections). The head is a 1x1 conv of elu(ul) to the parameters of a
discretised logistic mixture (common/nn/logistic_mixture.py).

Shapes: images [B, H, W, C] scaled to [-1, 1], H and W divisible by 4; logits [B, H, W, P] with
P = logistic_mixture.num_params(C, nr_logistic_mix).

Weight normalisation (Salimans and Kingma 2016) on every conv, kernel = g * v / |v|, without the reference's
data-dependent initialisation: g starts at 1 (0.1 for the last conv of each block, as the reference scales it),
which keeps unit-variance activations near unit variance at the start, so training needs no init pass.
Dropout takes an explicit key (None: off), so the model holds no random state.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from common.compat import List
from common.nn import logistic_mixture
from common.nn.cached_conv import generate_in_raster_order
from common.registry import lookup
from kernels.cached_dilated_conv import concat_elu  # [..., C] -> [..., 2C]: one definition for model and cached step

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def down_shift(x: jax.Array) -> jax.Array:
    """[B, H, W, C]: row i takes row i - 1; row 0 becomes zeros."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x: jax.Array) -> jax.Array:
    """[B, H, W, C]: column j takes column j - 1; column 0 becomes zeros."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class WeightNormConv(nnx.Module):
    """A 2-D conv (or transposed conv) with weight normalisation; padding and cropping are the caller's.

    [B, H, W, in] -> [B, H', W', out] with VALID padding: H' = (H - kh) // s + 1, or H * s + max(kh - s, 0)
    when transposed.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: tuple[int, int],
        *,
        stride: int = 1,
        transpose: bool = False,
        init_scale: float = 1.0,
        rngs: nnx.Rngs,
    ):
        self.stride = stride
        self.transpose = transpose
        shape = (*kernel_size, in_features, out_features)
        self.direction = nnx.Param(0.05 * jax.random.normal(rngs.params(), shape))
        self.scale = nnx.Param(jnp.full((out_features,), init_scale))
        self.bias = nnx.Param(jnp.zeros((out_features,)))

    def kernel(self) -> jax.Array:
        """[kh, kw, in, out] with each output filter's norm equal to its scale."""
        v = self.direction.value
        return v * (self.scale.value / jnp.sqrt(jnp.sum(v**2, axis=(0, 1, 2)) + 1e-12))

    def __call__(self, x: jax.Array) -> jax.Array:
        return apply_conv(x, self.kernel(), self.bias.value, stride=self.stride, transpose=self.transpose)


def apply_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array, *, stride: int = 1, transpose: bool = False):
    """The VALID conv (or transposed conv) of `WeightNormConv` with a given kernel [kh, kw, in, out] and bias [out]:
    shared with the cached generator, which computes each layer's kernel once per run."""
    strides = (stride, stride)
    if transpose:
        y = jax.lax.conv_transpose(x, kernel, strides, "VALID", dimension_numbers=DIMENSIONS)
    else:
        y = jax.lax.conv_general_dilated(x, kernel, strides, "VALID", dimension_numbers=DIMENSIONS)
    return y + bias


def crop_transposed(y: jax.Array, kind: str, kernel_width: int, out_height: int, out_width: int) -> jax.Array:
    """A transposed shifted conv's raw output [B, H * s + (kh - s), ...] -> its causal part [B, out_height,
    out_width, F]: the first rows and, horizontally, the centred (down) or leftmost (down_right) columns."""
    left = (kernel_width - 1) // 2 if kind == "down" else 0
    return y[:, :out_height, left : left + out_width]


class ShiftedConv(nnx.Module):
    """A causal conv: "down" (output row i sees input rows <= i; centred horizontally, filter width odd) or
    "down_right" (output (i, j) sees rows <= i and, within them, columns <= j).

    Strided (stride 2): output (i, j) sees input rows <= 2i. Transposed (stride 2, up-sampling): output row r sees
    input rows <= r // 2. [B, H, W, in] -> [B, H / s or H * s, ..., out].
    """

    def __init__(
        self,
        kind: str,
        in_features: int,
        out_features: int,
        filter_size: tuple[int, int],
        *,
        stride: int = 1,
        transpose: bool = False,
        init_scale: float = 1.0,
        rngs: nnx.Rngs,
    ):
        lookup({"down": None, "down_right": None}, kind, "shifted conv kind")
        height, width = filter_size
        if kind == "down" and width % 2 == 0:
            raise ValueError(f"a down-shifted conv is centred horizontally: its width must be odd, got {width}")
        self.kind, self.filter_size, self.transpose = kind, (height, width), transpose
        self.conv = WeightNormConv(
            in_features,
            out_features,
            filter_size,
            stride=stride,
            transpose=transpose,
            init_scale=init_scale,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        height, width = self.filter_size
        if self.transpose:
            # The transposed conv's output has H * s + (kh - s) rows: keep the first H * s (the causal ones).
            stride = self.conv.stride
            return crop_transposed(self.conv(x), self.kind, width, x.shape[1] * stride, x.shape[2] * stride)
        if self.kind == "down":
            pad = ((0, 0), (height - 1, 0), ((width - 1) // 2, (width - 1) // 2), (0, 0))
        else:
            pad = ((0, 0), (height - 1, 0), (width - 1, 0), (0, 0))
        return self.conv(jnp.pad(x, pad))


class GatedResnet(nnx.Module):
    """x + a * sigmoid(b), where [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux))))).

    x [B, H, W, F]; aux [B, H, W, A] or None (the other stream, or the skip connection); same shape out.
    """

    def __init__(self, kind: str, filters: int, aux_features: int, dropout: float, *, rngs: nnx.Rngs):
        size = (2, 3) if kind == "down" else (2, 2)
        self.conv_in = ShiftedConv(kind, 2 * filters, filters, size, rngs=rngs)
        self.aux_in = WeightNormConv(2 * aux_features, filters, (1, 1), rngs=rngs) if aux_features else None
        self.conv_out = ShiftedConv(kind, 2 * filters, 2 * filters, size, init_scale=0.1, rngs=rngs)
        self.dropout = dropout

    def __call__(self, x: jax.Array, aux: jax.Array | None = None, dropout_key: jax.Array | None = None):
        hidden = self.conv_in(concat_elu(x))
        if aux is not None:
            hidden = hidden + self.aux_in(concat_elu(aux))
        hidden = concat_elu(hidden)
        if dropout_key is not None and self.dropout > 0:
            keep = jax.random.bernoulli(dropout_key, 1.0 - self.dropout, hidden.shape)
            hidden = jnp.where(keep, hidden / (1.0 - self.dropout), 0.0)
        a, b = jnp.split(self.conv_out(hidden), 2, axis=-1)
        return x + a * jax.nn.sigmoid(b)


class PixelCNNPlusPlus(nnx.Module):
    """images [B, H, W, C] in [-1, 1] -> mixture parameters [B, H, W, num_params] (see the module docstring)."""

    NUM_SCALES = 3

    def __init__(
        self,
        *,
        image_shape: tuple[int, int, int],
        nr_resnet: int = 5,
        nr_filters: int = 160,
        nr_logistic_mix: int = 10,
        dropout: float = 0.5,
        rngs: nnx.Rngs,
    ):
        height, width, channels = image_shape
        factor = 2 ** (self.NUM_SCALES - 1)
        if height % factor or width % factor:
            raise ValueError(f"image height and width must be divisible by {factor}, got {height} x {width}")
        if nr_resnet < 1 or nr_filters < 1 or nr_logistic_mix < 1:
            raise ValueError(
                f"nr_resnet, nr_filters and nr_logistic_mix must be >= 1, got {nr_resnet}, {nr_filters},"
                f" {nr_logistic_mix}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.image_shape = (height, width, channels)
        self.nr_resnet, self.nr_logistic_mix = nr_resnet, nr_logistic_mix
        f = nr_filters
        inputs = channels + 1  # the image and a channel of ones, which the zero padding marks as "outside"
        self.u_init = ShiftedConv("down", inputs, f, (2, 3), rngs=rngs)
        self.ul_init_up = ShiftedConv("down", inputs, f, (1, 3), rngs=rngs)
        self.ul_init_left = ShiftedConv("down_right", inputs, f, (2, 1), rngs=rngs)

        def blocks(kind, aux, count):
            return List([GatedResnet(kind, f, aux, dropout, rngs=rngs) for _ in range(count)])

        scales = range(self.NUM_SCALES)
        self.down_u = List([blocks("down", 0, nr_resnet) for _ in scales])
        self.down_ul = List([blocks("down_right", f, nr_resnet) for _ in scales])
        self.downsample_u = List([ShiftedConv("down", f, f, (2, 3), stride=2, rngs=rngs) for _ in scales[1:]])
        self.downsample_ul = List([ShiftedConv("down_right", f, f, (2, 2), stride=2, rngs=rngs) for _ in scales[1:]])
        # Up pass, coarsest scale first, fed the down pass's outputs in reverse: nr_resnet blocks at the coarsest
        # scale (whose last down output is where the up pass starts), nr_resnet + 1 at the others.
        up_counts = [nr_resnet] + [nr_resnet + 1] * (self.NUM_SCALES - 1)
        self.up_u = List([blocks("down", f, count) for count in up_counts])
        self.up_ul = List([blocks("down_right", 2 * f, count) for count in up_counts])
        self.upsample_u = List(
            [ShiftedConv("down", f, f, (2, 3), stride=2, transpose=True, rngs=rngs) for _ in scales[1:]]
        )
        self.upsample_ul = List(
            [ShiftedConv("down_right", f, f, (2, 2), stride=2, transpose=True, rngs=rngs) for _ in scales[1:]]
        )
        self.head = WeightNormConv(f, logistic_mixture.num_params(channels, nr_logistic_mix), (1, 1), rngs=rngs)

    def __call__(self, images: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        if images.ndim != 4 or images.shape[1:] != self.image_shape:
            raise ValueError(f"images must be [batch, {', '.join(map(str, self.image_shape))}], got {images.shape}")
        num_blocks = 2 * self.NUM_SCALES * (2 * self.nr_resnet + 1)
        keys = None if dropout_key is None else iter(jax.random.split(dropout_key, num_blocks))

        def key():
            return None if keys is None else next(keys)

        x = jnp.concatenate([images, jnp.ones_like(images[..., :1])], axis=-1)
        u = down_shift(self.u_init(x))
        ul = down_shift(self.ul_init_up(x)) + right_shift(self.ul_init_left(x))
        u_skips, ul_skips = [u], [ul]
        for scale in range(self.NUM_SCALES):
            if scale:
                u = self.downsample_u[scale - 1](u)
                ul = self.downsample_ul[scale - 1](ul)
                u_skips.append(u)
                ul_skips.append(ul)
            for u_block, ul_block in zip(self.down_u[scale], self.down_ul[scale], strict=True):
                u = u_block(u, None, key())
                ul = ul_block(ul, u, key())
                u_skips.append(u)
                ul_skips.append(ul)
        u, ul = u_skips.pop(), ul_skips.pop()
        for scale in range(self.NUM_SCALES):
            if scale:
                u = self.upsample_u[scale - 1](u)
                ul = self.upsample_ul[scale - 1](ul)
            for u_block, ul_block in zip(self.up_u[scale], self.up_ul[scale], strict=True):
                u = u_block(u, u_skips.pop(), key())
                ul = ul_block(ul, jnp.concatenate([u, ul_skips.pop()], axis=-1), key())
        assert not u_skips and not ul_skips
        return self.head(jax.nn.elu(ul))


def make_naive_sampler(model: PixelCNNPlusPlus, batch: int, num_pixels: int | None = None):
    """The paper's baseline: one full forward pass over the whole image per pixel, in raster order, its channels
    drawn one after another from that pixel's mixture (`logistic_mixture.sample`). Compiled: the generation loop
    of common/nn/cached_conv.py (`generate_in_raster_order`), which the cached generator runs too.

    Returns run(key) -> (images int32 [B, H, W, C], params float32 [B, H, W, P]: the mixture parameters each pixel
    was drawn from). Pixel t = i * W + j uses noise `pixel_noise(key, t, ...)`, so any generator with the same key
    and the same parameters draws the same image. num_pixels (default H * W): stop after the first num_pixels in
    raster order, the rest left 0 (to time a few of its equally costly steps).
    """
    num_pixels = check_num_pixels(model, num_pixels)
    model.eval()
    graphdef, state = nnx.split(model)
    height, width, channels = model.image_shape

    @jax.jit
    def run(state, key):
        network = nnx.merge(graphdef, state)

        def forward(images, row, col):  # the whole network for one pixel's parameters [B, P]
            return images, network(logistic_mixture.pixels_to_unit(images))[:, row, col]

        def sample(pixel_params, t):
            noise = pixel_noise(key, t, batch, channels, model.nr_logistic_mix)
            return logistic_mixture.sample(pixel_params, noise, channels)

        def feed(images, row, col, pixel):
            return images.at[:, row, col].set(pixel)

        images = jnp.zeros((batch, height, width, channels), jnp.int32)
        pixels, params = generate_in_raster_order(forward, sample, feed, images, num_positions=num_pixels, width=width)
        return raster_to_images(pixels, model.image_shape), raster_to_images(params, model.image_shape)

    return lambda key: run(state, key)


def raster_to_images(per_pixel: jax.Array, image_shape: tuple[int, int, int]) -> jax.Array:
    """A generation loop's per-pixel outputs [num_pixels, B, D] (raster order) -> [B, H, W, D], the pixels past
    num_pixels 0."""
    height, width, _ = image_shape
    num_pixels, batch, depth = per_pixel.shape
    full = jnp.zeros((height * width, batch, depth), per_pixel.dtype).at[:num_pixels].set(per_pixel)
    return full.reshape(height, width, batch, depth).transpose(2, 0, 1, 3)


def pixel_noise(key: jax.Array, t: jax.Array, batch: int, channels: int, num_mix: int) -> dict[str, jax.Array]:
    """The sampling noise of raster position t for a batch of images (every generator draws the same)."""
    return logistic_mixture.sample_noise(jax.random.fold_in(key, t), (batch,), channels, num_mix)


def check_num_pixels(model: PixelCNNPlusPlus, num_pixels: int | None) -> int:
    """num_pixels (None: the whole image) -> an int in 1 .. H * W, or a ValueError naming it."""
    total = model.image_shape[0] * model.image_shape[1]
    if num_pixels is None:
        return total
    if not 1 <= int(num_pixels) <= total:
        raise ValueError(f"num_pixels must be in 1 .. {total} (H * W), got {num_pixels}")
    return int(num_pixels)
