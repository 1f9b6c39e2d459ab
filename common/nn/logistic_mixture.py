"""The discretised logistic mixture likelihood of PixelCNN++ (Salimans et al. 2017), for 1 (grey) or more channels.

A pixel's C channel values (0..255, scaled to x in [-1, 1] by x = v / 127.5 - 1) are drawn from K mixture
components. Component k has per channel a mean mu[c, k] and a log scale s[c, k]; channels are autoregressive
within the component: channel c's mean is mu[c, k] + sum_{j < c} coeff[c, j, k] * x_j (RGB: G depends on R, B on
R and G). Each channel's probability of value v is the logistic's mass on the bin [x - 1/255, x + 1/255], with
the edge bins extended to -inf (v = 0) and +inf (v = 255), so the 256 probabilities sum to 1.

Parameter layout, per pixel, P = num_params(C, K) = K * (1 + 2C + C(C-1)/2) values:
  [K mixture logits | C x K means | C x K log scales | C(C-1)/2 x K coefficients (tanh applied here)]
with the coefficients ordered (c, j) for c = 1..C-1, j = 0..c-1.
"""

import math

import jax
import jax.numpy as jnp

MIN_LOG_SCALE = -7.0  # floors the scale, as the reference does, so a bin's log-probability stays finite
BIN_HALF_WIDTH = 1.0 / 255.0  # half of the 2/255 spacing between neighbouring values in [-1, 1]


def num_params(channels: int, num_mix: int) -> int:
    """Outputs per pixel the network must produce for C channels and K components."""
    if channels < 1 or num_mix < 1:
        raise ValueError(f"channels and num_mix must be >= 1, got {channels} and {num_mix}")
    return num_mix * (1 + 2 * channels + channels * (channels - 1) // 2)


def pixels_to_unit(values: jax.Array) -> jax.Array:
    """Pixel values 0..255 (any dtype) -> float32 in [-1, 1]."""
    return values.astype(jnp.float32) / 127.5 - 1.0


def unit_to_pixels(x: jax.Array) -> jax.Array:
    """float in [-1, 1] -> the nearest pixel value, int32 0..255."""
    return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.int32)


def split_params(params: jax.Array, channels: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """params [..., P] -> (logits [..., K], means [..., C, K], log_scales [..., C, K], coeffs [..., C(C-1)/2, K])."""
    per_mix = num_params(channels, 1)
    if params.shape[-1] % per_mix:
        raise ValueError(f"last axis {params.shape[-1]} is not a multiple of {per_mix} (channels={channels})")
    k = params.shape[-1] // per_mix
    lead = params.shape[:-1]
    pairs = channels * (channels - 1) // 2
    logits, means, log_scales, coeffs = jnp.split(params, [k, k + channels * k, k + 2 * channels * k], axis=-1)
    return (
        logits,
        means.reshape(*lead, channels, k),
        jnp.maximum(log_scales.reshape(*lead, channels, k), MIN_LOG_SCALE),
        jnp.tanh(coeffs.reshape(*lead, pairs, k)),
    )


def conditional_means(means: jax.Array, coeffs: jax.Array, x: jax.Array) -> jax.Array:
    """means [..., C, K] shifted by the earlier channels' values x [..., C] in [-1, 1] -> [..., C, K]."""
    channels = means.shape[-2]
    rows = [means[..., 0, :]]
    for c in range(1, channels):
        shift = sum(coeffs[..., c * (c - 1) // 2 + j, :] * x[..., j : j + 1] for j in range(c))
        rows.append(means[..., c, :] + shift)
    return jnp.stack(rows, axis=-2)


def channel_log_probs(x: jax.Array, means: jax.Array, log_scales: jax.Array) -> jax.Array:
    """log P(value) of each channel under each component: x [..., C] on the 256-value grid in [-1, 1],
    means, log_scales [..., C, K] -> [..., C, K]."""
    centred = x[..., None] - means
    inv_scale = jnp.exp(-log_scales)
    plus_in = inv_scale * (centred + BIN_HALF_WIDTH)
    min_in = inv_scale * (centred - BIN_HALF_WIDTH)
    log_cdf_plus = plus_in - jax.nn.softplus(plus_in)  # log sigmoid(plus_in): the bin of value 0 reaches -inf
    log_one_minus_cdf_min = -jax.nn.softplus(min_in)  # log (1 - sigmoid(min_in)): value 255 reaches +inf
    cdf_delta = jax.nn.sigmoid(plus_in) - jax.nn.sigmoid(min_in)
    # Where the bin's mass underflows (a very narrow component far away), its density at the centre times the
    # bin width 2/255 stands in for it, as in the reference.
    mid_in = inv_scale * centred
    log_pdf_mid = mid_in - log_scales - 2.0 * jax.nn.softplus(mid_in)
    inner = jnp.where(cdf_delta > 1e-5, jnp.log(jnp.maximum(cdf_delta, 1e-12)), log_pdf_mid - math.log(127.5))
    xb = x[..., None]
    return jnp.where(xb < -0.999, log_cdf_plus, jnp.where(xb > 0.999, log_one_minus_cdf_min, inner))


def log_prob(params: jax.Array, values: jax.Array) -> jax.Array:
    """log P(pixel) in nats: params [..., P], values [..., C] (ints 0..255) -> [...], summed over channels."""
    channels = values.shape[-1]
    logits, means, log_scales, coeffs = split_params(params, channels)
    x = pixels_to_unit(values)
    per_channel = channel_log_probs(x, conditional_means(means, coeffs, x), log_scales)
    return jax.nn.logsumexp(per_channel.sum(axis=-2) + jax.nn.log_softmax(logits, axis=-1), axis=-1)


def bits_per_dim(nats_per_image: jax.Array, num_dims: int) -> jax.Array:
    """Negative log-likelihood of an image in nats -> bits per sub-pixel (H * W * C of them)."""
    return nats_per_image / (num_dims * math.log(2.0))


def sample_noise(key: jax.Array, shape: tuple[int, ...], channels: int, num_mix: int) -> dict[str, jax.Array]:
    """The randomness of `sample` for pixels of `shape`: gumbel [*shape, K] picks the component, uniform
    [*shape, C] in (1e-5, 1 - 1e-5) draws each channel from its logistic."""
    mix_key, channel_key = jax.random.split(key)
    return {
        "gumbel": jax.random.gumbel(mix_key, (*shape, num_mix)),
        "uniform": jax.random.uniform(channel_key, (*shape, channels), minval=1e-5, maxval=1.0 - 1e-5),
    }


def sample(params: jax.Array, noise: dict[str, jax.Array], channels: int) -> jax.Array:
    """Draws pixel values, channel by channel: params [..., P] and `sample_noise`'s noise -> int32 [..., C].

    Channel c is drawn from the chosen component's logistic with its mean shifted by the earlier channels' drawn
    (and rounded) values, the same values the likelihood conditions on, then rounded to the nearest of the 256
    values (the edge bins take everything beyond them, as the likelihood's do).
    """
    logits, means, log_scales, coeffs = split_params(params, channels)
    component = jnp.argmax(logits + noise["gumbel"], axis=-1)
    pick = jax.nn.one_hot(component, logits.shape[-1], dtype=means.dtype)[..., None, :]  # [..., 1, K]
    u = noise["uniform"]
    logistic = jnp.log(u) - jnp.log1p(-u)  # [..., C]
    x = jnp.zeros(params.shape[:-1] + (channels,), jnp.float32)
    for c in range(channels):
        mean = (conditional_means(means, coeffs, x)[..., c, :] * pick[..., 0, :]).sum(-1)
        scale = (jnp.exp(log_scales[..., c, :]) * pick[..., 0, :]).sum(-1)
        value = unit_to_pixels(jnp.clip(mean + scale * logistic[..., c], -1.0, 1.0))
        x = x.at[..., c].set(pixels_to_unit(value))
    return unit_to_pixels(x)
