"""The discretised logistic mixture against a direct numpy reading of its formula; normalisation; the sampler."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.nn import logistic_mixture as lm


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_log_prob(params: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The formula for one pixel at a time, in float64: params [N, P], values [N, C] -> [N]."""
    n, channels = values.shape
    k = params.shape[1] // lm.num_params(channels, 1)
    out = np.zeros(n)
    for i in range(n):
        p = params[i].astype(np.float64)
        logits = p[:k]
        means = p[k : k + channels * k].reshape(channels, k)
        log_s = np.maximum(p[k + channels * k : k + 2 * channels * k].reshape(channels, k), -7.0)
        coeffs = np.tanh(p[k + 2 * channels * k :].reshape(-1, k))
        x = values[i] / 127.5 - 1.0
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        total = 0.0
        for m in range(k):
            prob = weights[m]
            for c in range(channels):
                mean = means[c, m] + sum(coeffs[c * (c - 1) // 2 + j, m] * x[j] for j in range(c))
                s = math.exp(log_s[c, m])
                upper = 1.0 if values[i, c] == 255 else _sigmoid((x[c] + 1 / 255 - mean) / s)
                lower = 0.0 if values[i, c] == 0 else _sigmoid((x[c] - 1 / 255 - mean) / s)
                prob *= upper - lower
            total += prob
        out[i] = np.log(total)
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_log_prob_matches_the_formula(channels):
    rng = np.random.default_rng(channels)
    k = 4
    params = rng.normal(size=(64, lm.num_params(channels, k))).astype(np.float32)
    params[:, k + channels * k : k + 2 * channels * k] -= 2.5  # scales around 0.1, so bins carry real mass
    values = rng.integers(0, 256, size=(64, channels))
    values[:4] = 0
    values[4:8] = 255
    got = np.asarray(lm.log_prob(jnp.asarray(params), jnp.asarray(values)))
    # float32 loses digits on bins far in a component's tail (a difference of two sigmoids near 0 or 1), and
    # there the likelihood switches to the density at the bin's centre, as the reference does: relative 0.5%.
    np.testing.assert_allclose(got, numpy_log_prob(params, values), rtol=5e-3, atol=1e-4)


def test_grey_probabilities_over_all_256_values_sum_to_one():
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(size=(5, lm.num_params(1, 3))), jnp.float32)
    values = jnp.arange(256)[:, None, None]  # [256, 1 pixel set, C]
    log_p = lm.log_prob(jnp.broadcast_to(params, (256, 5, params.shape[-1])), jnp.broadcast_to(values, (256, 5, 1)))
    np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(0), 1.0, atol=1e-4)


@pytest.mark.long  # 16.7 million values: ~30 s on 2 cores
def test_rgb_probabilities_over_all_256_cubed_values_sum_to_one():
    rng = np.random.default_rng(1)
    params = jnp.asarray(rng.normal(size=(lm.num_params(3, 2),)), jnp.float32)
    grid = jnp.arange(256)
    green_blue = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)  # [65536, 2]

    def mass_with_red(red):
        values = jnp.concatenate([jnp.full((green_blue.shape[0], 1), red), green_blue], axis=-1)
        return jnp.exp(lm.log_prob(jnp.broadcast_to(params, (values.shape[0], params.shape[0])), values)).sum()

    total = float(jax.jit(lambda: jax.lax.map(mass_with_red, grid).sum())())
    assert abs(total - 1.0) < 1e-3, total


def test_sampler_follows_the_probabilities_and_conditions_later_channels_on_earlier_ones():
    rng = np.random.default_rng(2)
    params = jnp.asarray(rng.normal(size=(lm.num_params(1, 3),)), jnp.float32)
    n = 40_000
    noise = lm.sample_noise(jax.random.key(0), (n,), 1, 3)
    draw = jax.jit(lm.sample, static_argnums=2)
    draws = np.asarray(draw(jnp.broadcast_to(params, (n, params.shape[0])), noise, 1))[:, 0]
    probs = np.exp(np.asarray(lm.log_prob(jnp.broadcast_to(params, (256, params.shape[0])), jnp.arange(256)[:, None])))
    empirical = np.bincount(draws, minlength=256) / n
    assert 0.5 * np.abs(empirical - probs).sum() < 0.03

    # One component, tiny scales, green coefficient ~1 on red: green follows red's draw.
    k = 1
    params = np.zeros(lm.num_params(3, k), np.float32)
    params[k + 3 : k + 6] = -7.0  # log scales at the floor
    params[k + 6] = 20.0  # tanh -> 1: green's mean += red
    noise = lm.sample_noise(jax.random.key(1), (2000,), 3, k)
    red_means = np.linspace(-0.9, 0.9, 2000, dtype=np.float32)
    batch = np.tile(params, (2000, 1))
    batch[:, k] = red_means
    drawn = np.asarray(draw(jnp.asarray(batch), noise, 3))
    # A logistic of scale e^-7 strays by at most ~1.5 values at the noise's clip (|logit u| < 11.6).
    assert np.abs(drawn[:, 0] - np.asarray(lm.unit_to_pixels(jnp.asarray(red_means)))).max() <= 2
    assert np.abs(drawn[:, 1] - drawn[:, 0]).max() <= 2  # green's mean is red's drawn value
    assert np.abs(drawn[:, 2] - 128).max() <= 2  # blue's mean stays 0


def test_bits_per_dim_and_bad_shapes():
    assert float(lm.bits_per_dim(jnp.float32(784 * math.log(2.0) * 3), 784)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="not a multiple of 3"):
        lm.split_params(jnp.zeros((4, 7)), 1)
    with pytest.raises(ValueError, match="channels and num_mix must be >= 1"):
        lm.num_params(0, 5)
