"""PixelCNN++: the shifted convs and the whole network are causal in raster order; naive generation draws from
the network's own predictions; bad configurations are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import logistic_mixture, pixelcnn

SHAPE = (8, 8, 3)


def tiny(image_shape=SHAPE, **fields) -> pixelcnn.PixelCNNPlusPlus:
    return pixelcnn.PixelCNNPlusPlus(
        image_shape=image_shape,
        **{"nr_resnet": 1, "nr_filters": 8, "nr_logistic_mix": 2, "dropout": 0.0, **fields},
        rngs=nnx.Rngs(0),
    )


def changed_positions(fn, x, row, col) -> np.ndarray:
    """bool [H', W']: outputs of fn ([1, H, W, C] -> [1, H', W', D]) that move when input (row, col) moves."""
    bumped = x.at[:, row, col].add(1.0)
    return np.asarray(jnp.abs(fn(bumped) - fn(x)).max(axis=(0, 3)) > 1e-6)


def jitted(model):
    return jax.jit(lambda x, *key: model(x, *key))


@pytest.mark.parametrize(
    "kind, stride, transpose",
    [
        ("down", 1, False),
        ("down_right", 1, False),
        ("down", 2, False),
        ("down_right", 2, False),
        ("down", 2, True),
        ("down_right", 2, True),
    ],
)
def test_shifted_convs_see_only_rows_above_and_columns_to_the_left(kind, stride, transpose):
    size = (2, 3) if kind == "down" else (2, 2)
    conv = pixelcnn.ShiftedConv(kind, 2, 3, size, stride=stride, transpose=transpose, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 2))
    for row, col in [(0, 0), (3, 4), (5, 7), (7, 0)]:
        moved = changed_positions(conv, x, row, col)
        rows, cols = np.nonzero(moved)
        # A stride-2 conv never reads the last row or column (rows 2r - 1 .. 2r, r < 4): nothing else is unseen.
        assert moved.any() or (stride == 2 and not transpose and 7 in (row, col))
        # Output (r, c) covers input rows r*s - (kh-1) .. r*s (strided), r // s (transposed), r - 1 .. r (plain).
        out_rows = rows // stride if transpose else rows * stride
        assert (out_rows >= row).all(), (row, col, rows)
        if kind == "down_right":
            out_cols = cols // stride if transpose else cols * stride
            assert (out_cols >= col).all(), (row, col, cols)


@pytest.mark.slow  # compiles the whole network (~10-20 s on 2 shared cores)
def test_changing_a_pixel_changes_no_prediction_of_earlier_pixels():
    model = tiny()
    model.eval()
    images = jax.random.uniform(jax.random.key(1), (1, *SHAPE), minval=-1, maxval=1)
    height, width = SHAPE[:2]
    raster = np.arange(height * width).reshape(height, width)
    forward = jitted(model)
    for row, col in [(0, 0), (2, 5), (4, 0), (4, 7), (7, 7)]:
        moved = changed_positions(forward, images, row, col)
        assert not moved[raster <= raster[row, col]].any(), (row, col)  # including the pixel's own prediction
        if raster[row, col] < raster.max():
            assert moved[raster > raster[row, col]].any()  # the test can fail: later pixels do see it


@pytest.mark.slow  # compiles the whole network (~10-20 s on 2 shared cores)
def test_output_shape_dropout_and_weight_normalisation():
    model = tiny(image_shape=(12, 8, 1), nr_logistic_mix=5, dropout=0.5)
    images = jnp.zeros((2, 12, 8, 1))
    model = jitted(model)
    assert model(images).shape == (2, 12, 8, logistic_mixture.num_params(1, 5)) == (2, 12, 8, 15)
    np.testing.assert_array_equal(model(images), model(images))  # no key: deterministic
    assert not np.allclose(model(images, jax.random.key(0)), model(images, jax.random.key(1)))
    conv = pixelcnn.WeightNormConv(3, 4, (2, 3), rngs=nnx.Rngs(0))
    norms = jnp.sqrt((conv.kernel() ** 2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(norms, conv.scale.value, rtol=1e-5)


@pytest.mark.slow  # compiles the whole network (~10-20 s on 2 shared cores)
def test_naive_sampler_draws_from_the_networks_predictions_of_its_own_image():
    model = tiny(image_shape=(4, 4, 3))
    images, params = jax.jit(pixelcnn.make_naive_sampler(model, batch=2))(jax.random.key(3))
    assert images.shape == (2, 4, 4, 3) and images.dtype == jnp.int32
    assert 0 <= int(images.min()) and int(images.max()) <= 255
    # Every pixel's parameters are the network's output on the finished image (causality), and its value is
    # the draw from them with that position's noise.
    np.testing.assert_allclose(params, jitted(model)(logistic_mixture.pixels_to_unit(images)), atol=1e-5)
    positions = jnp.arange(16)
    noise = jax.vmap(lambda t: pixelcnn.pixel_noise(jax.random.key(3), t, 2, 3, 2))(positions)  # [16, 2, ...]
    redrawn = jax.jit(jax.vmap(lambda p, n: logistic_mixture.sample(p, n, 3)))(
        params.reshape(2, 16, -1).swapaxes(0, 1), noise
    )
    np.testing.assert_array_equal(redrawn.swapaxes(0, 1).reshape(images.shape), images)


def test_bad_configurations_name_the_value():
    with pytest.raises(ValueError, match="divisible by 4, got 10 x 8"):
        tiny(image_shape=(10, 8, 1))
    with pytest.raises(ValueError, match="dropout must be in"):
        tiny(dropout=1.0)
    with pytest.raises(ValueError, match="unknown shifted conv kind 'up'; valid choices: down, down_right"):
        pixelcnn.ShiftedConv("up", 1, 1, (2, 3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"images must be \[batch, 8, 8, 3\], got \(1, 8, 8, 1\)"):
        tiny()(jnp.zeros((1, 8, 8, 1)))
