"""Cached PixelCNN++ generation: the transposed convs' cached output blocks, the vertical gated resnet blocks and the
horizontal block stacks (one cached step kernel call per pixel, XLA and interpreted Pallas) equal their full-image
counterparts at every position (the row cache and the pixel ring themselves: test_cached_conv.py), and
the whole cached generator gives the naive generator's mixture parameters and the same images under the same key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import cached_conv, pixelcnn
from common.nn import cached_pixelcnn as cached

FILTERS = 3


def position_major(x):
    """[B, W, ...] (the model's layout) -> [W, B, ...] (the cached generator's rows)."""
    return jnp.swapaxes(x, 0, 1)


def batch_major(x):
    """The cached generator's [kh, W, B, F] blocks -> [B, kh, W, F]."""
    return jnp.moveaxis(x, 2, 0)


def conv_and_input(kind, stride=1, transpose=False, shape=(2, 8, 6, 4)):
    size = (2, 3) if kind == "down" else (2, 2)
    conv = pixelcnn.ShiftedConv(kind, shape[-1], FILTERS, size, stride=stride, transpose=transpose, rngs=nnx.Rngs(1))
    conv.conv.bias.value = jax.random.normal(jax.random.key(2), (FILTERS,))  # a non-zero bias, so padding shows
    return conv, jax.random.normal(jax.random.key(0), shape)


def test_transposed_convs_cache_the_outputs_their_input_covers():
    conv, x = conv_and_input("down", 2, transpose=True)
    full = conv(x)  # [B, 2H, 2W, F]
    for row in range(x.shape[1]):
        covered = batch_major(cached.transposed_row(cached.conv_weights(conv), position_major(x[:, row])))
        np.testing.assert_allclose(covered, full[:, 2 * row : 2 * row + 2], atol=1e-5)
    conv, x = conv_and_input("down_right", 2, transpose=True)
    full = conv(x)
    for row in range(x.shape[1]):
        for col in range(x.shape[2]):
            covered = batch_major(cached.transposed_pixel(cached.conv_weights(conv), x[:, row, col]))
            np.testing.assert_allclose(covered, full[:, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2], atol=1e-5)


def test_gated_resnet_blocks_row_by_row():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, FILTERS))
    aux = jax.random.normal(jax.random.key(1), (2, 3, 4, 2))
    batch, height, width, _ = x.shape
    vertical = pixelcnn.GatedResnet("down", FILTERS, 2, 0.0, rngs=nnx.Rngs(0))
    rows_cache = {"x": jnp.zeros((width, batch, FILTERS)), "h": jnp.zeros((width, batch, FILTERS))}
    frozen = cached.freeze_block(vertical)
    full = jax.jit(vertical)(x, aux)
    block_row = jax.jit(cached.block_row)  # one dispatch per row
    for row in range(height):
        got, rows_cache = block_row(frozen, rows_cache, position_major(x[:, row]), position_major(aux[:, row]))
        np.testing.assert_allclose(got, position_major(full[:, row]), atol=1e-5)


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_gated_resnet_stack_pixel_by_pixel_on_the_step_kernel(impl):
    """Two down-right blocks in sequence, each with its own aux input, as one cached step per pixel (the kernel
    interpreted on CPU for "pallas") against the blocks run over the whole image: every block's output."""
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, FILTERS))
    aux = jax.random.normal(jax.random.key(1), (2, 2, 3, 4, 2))  # [blocks, B, H, W, A]
    _, batch, height, width, _ = aux.shape
    blocks = [pixelcnn.GatedResnet("down_right", FILTERS, 2, 0.0, rngs=nnx.Rngs(seed)) for seed in (1, 2)]
    full_first = jax.jit(blocks[0])(x, aux[0])
    full = jnp.stack([full_first, jax.jit(blocks[1])(full_first, aux[1])])  # [blocks, B, H, W, F]
    stack = cached.block_stack([cached.freeze_block(block) for block in blocks])
    cache = jnp.zeros((cached_conv.PixelRingLayout(width, 2, 2).num_slots, batch, FILTERS))
    step = jax.jit(cached.stack_pixel, static_argnames="impl")
    for row in range(height):
        for col in range(width):
            got, cache = step(stack, cache, row, col, x[:, row, col], aux[:, :, row, col], impl=impl)
            np.testing.assert_allclose(got, full[:, :, row, col], atol=1e-5)


def tiny(image_shape, nr_resnet=1, nr_filters=8):
    return pixelcnn.PixelCNNPlusPlus(
        image_shape=image_shape, nr_resnet=nr_resnet, nr_filters=nr_filters, nr_logistic_mix=2, dropout=0.5,
        rngs=nnx.Rngs(0),
    )  # fmt: skip


def assert_same_generation(model, batch, key, impl="auto"):
    naive_images, naive_params = pixelcnn.make_naive_sampler(model, batch)(key)
    images, params = cached.make_cached_sampler(model, batch, impl=impl)(key)
    np.testing.assert_allclose(params, naive_params, atol=1e-4)
    np.testing.assert_array_equal(images, naive_images)
    assert len(np.unique(np.asarray(images))) > 10  # real draws, not a constant image
    return images, params


@pytest.mark.long  # make test keeps the per-conv and per-block checks; the whole generator is minutes of compiling
@pytest.mark.slow  # compiles both generators (~15-30 s on 2 shared cores; minutes when they are busy)
@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_cached_generation_equals_naive_rgb_4x4(impl):
    assert_same_generation(tiny((4, 4, 3), nr_filters=4), batch=2, key=jax.random.key(3), impl=impl)


@pytest.mark.long  # each size compiles both generators: a minute or more on 2 shared cores
@pytest.mark.slow
@pytest.mark.parametrize(
    "image_shape, nr_resnet, nr_filters",
    [((8, 8, 3), 1, 8), ((12, 8, 1), 2, 6), ((8, 12, 3), 1, 5), ((16, 16, 3), 2, 8), ((16, 16, 1), 1, 4)],
)
def test_cached_generation_equals_naive_over_sizes(image_shape, nr_resnet, nr_filters):
    model = tiny(image_shape, nr_resnet, nr_filters)
    images, params = assert_same_generation(model, batch=3, key=jax.random.key(7))
    # Stopping early draws the same first pixels and leaves the rest 0.
    part = 2 * image_shape[1] + 3
    part_images, part_params = cached.make_cached_sampler(model, 3, num_pixels=part)(jax.random.key(7))
    flat = np.asarray(part_images).reshape(3, -1, image_shape[2])
    np.testing.assert_array_equal(flat[:, :part], np.asarray(images).reshape(3, -1, image_shape[2])[:, :part])
    assert not flat[:, part:].any() and not np.asarray(part_params).reshape(3, -1, params.shape[-1])[:, part:].any()


def test_bad_pixel_count_and_impl_name_the_value():
    model = nnx.eval_shape(lambda: tiny((8, 8, 1)))  # the check comes before any weight is read
    with pytest.raises(ValueError, match="unknown impl 'cuda'; valid choices: xla, pallas, auto"):
        cached.make_cached_sampler(model, 1, impl="cuda")
    with pytest.raises(ValueError, match=r"num_pixels must be in 1 \.\. 64 \(H \* W\), got 65"):
        cached.make_cached_sampler(model, 1, num_pixels=65)
    with pytest.raises(ValueError, match=r"num_pixels must be in 1 \.\. 64 \(H \* W\), got 0"):
        pixelcnn.make_naive_sampler(model, 1, num_pixels=0)
