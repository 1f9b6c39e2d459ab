"""The cached-conv engine's 2-D caches and its generation loop: a row cache and a pixel ring give a shifted conv's
full-image output at every position (strided ones at their run_every positions), and the raster loop visits the
positions in order with its sampling hook, whether it runs rows around columns or one flat scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.nn import cached_conv


def full_conv(x, kernel, bias, padding, stride):
    """The reference: a VALID conv over x [B, H, W, C] zero-padded by `padding` ((top, bottom), (left, right))."""
    padded = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    out = jax.lax.conv_general_dilated(
        padded, kernel, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return out + bias


def random_conv(key, kernel_shape):
    kernel_key, bias_key = jax.random.split(key)
    return {
        "kernel": jax.random.normal(kernel_key, kernel_shape),
        "bias": jax.random.normal(bias_key, kernel_shape[-1:]),  # non-zero, so a padding mistake shows
    }


SHAPES = [(2, 8, 6, 4, 3), (1, 4, 4, 1, 5), (3, 6, 8, 3, 2)]  # batch, height, width, channels in, channels out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("batch, height, width, channels, filters", SHAPES)
def test_row_cache_gives_a_down_shifted_convs_rows(batch, height, width, channels, filters, stride):
    key = jax.random.key(height * width + stride)
    x = jax.random.normal(key, (batch, height, width, channels))
    conv = random_conv(jax.random.fold_in(key, 1), (2, 3, channels, filters))
    full = full_conv(x, conv["kernel"], conv["bias"], ((1, 0), (1, 1)), stride)  # [B, H / s, W / s, F]
    previous = jnp.zeros((width, batch, channels))  # the top padding
    for row in range(height):
        current = jnp.swapaxes(x[:, row], 0, 1)  # position-major [W, B, C]
        if row % stride == 0:
            got = cached_conv.row_cache_conv(conv, previous, current, stride=stride)
            want = jnp.swapaxes(full[:, row // stride], 0, 1)
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"row {row}")
        previous = current  # cached every row, run every stride-th


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("batch, height, width, channels, filters", SHAPES)
def test_pixel_ring_gives_a_down_right_convs_pixels(batch, height, width, channels, filters, stride):
    key = jax.random.key(height * width + 10 * stride)
    x = jax.random.normal(key, (batch, height, width, channels))
    conv = random_conv(jax.random.fold_in(key, 1), (2, 2, channels, filters))
    full = full_conv(x, conv["kernel"], conv["bias"], ((1, 0), (1, 0)), stride)
    ring = cached_conv.init_pixel_ring(width, batch, channels)
    write, window = jax.jit(cached_conv.pixel_ring_write), jax.jit(cached_conv.pixel_ring_window)
    for row in range(height):
        for col in range(width):
            ring = write(ring, row, col, x[:, row, col])
            if row % stride == 0 and col % stride == 0:
                got = cached_conv.window_conv(conv, window(ring, row, col))
                np.testing.assert_allclose(got, full[:, row // stride, col // stride], atol=1e-4)


def test_run_every_runs_only_where_every_index_is_a_multiple():
    def bump(count):
        return count + 1

    ran = [
        (row, col)
        for row in range(4)
        for col in range(4)
        if cached_conv.run_every(2, bump, jnp.int32(0), jnp.int32(row), jnp.int32(col)) == 1
    ]
    assert ran == [(0, 0), (0, 2), (2, 0), (2, 2)]
    assert [row for row in range(5) if cached_conv.run_every(4, bump, 0, jnp.int32(row)) == 1] == [0, 4]


@pytest.mark.parametrize("with_rows", [False, True])
@pytest.mark.parametrize("num_positions", [12, 7, 1])
def test_raster_loop_visits_positions_in_order_and_feeds_each_sample_back(with_rows, num_positions):
    """A toy autoregressive "model": each position's parameter is the previous sample plus its own row (and,
    with rows, the number of rows started), the hook adds the position; every output is then known in closed form."""
    width = 4

    def step(state, row, col):
        return state, state["last"] + 100 * row + state["rows"]

    def sample(params, t):
        return params + t

    def feed(state, row, col, value):
        return {**state, "last": value}

    def start_row(state, row):
        return {**state, "rows": state["rows"] + 1}

    state = {"last": jnp.int32(0), "rows": jnp.int32(0)}
    samples, params = jax.jit(
        lambda state: cached_conv.generate_in_raster_order(
            step, sample, feed, state, num_positions=num_positions, width=width, row_fn=start_row if with_rows else None
        )
    )(state)
    last, want_samples, want_params = 0, [], []
    for t in range(num_positions):
        row = t // width
        param = last + 100 * row + (row + 1 if with_rows else 0)
        last = param + t
        want_params.append(param)
        want_samples.append(last)
    np.testing.assert_array_equal(params, want_params)
    np.testing.assert_array_equal(samples, want_samples)


def test_pixel_ring_layout_keeps_reads_and_writes_apart_and_the_padding_column_zero():
    """Over every pixel of a 3 x 4 image: no conv reads a row any conv writes at that pixel (the step kernel's
    contract), column 0 of each ring (the left padding) is never written, and a tap at (r, c) reads the row that
    pixel (r - 1, c - 1), (r - 1, c) or (r, c - 1) was written to (or a padding row off the image)."""
    height, width, layers, convs = 3, 4, 2, 2
    rings = cached_conv.PixelRingLayout(width, layers, convs)
    written_at = {}
    padding = {int(s) for s in np.arange(rings.num_slots) if s % (width + 1) == 0}
    for row in range(height):
        for col in range(width):
            reads, writes = np.asarray(rings.read_slots(row, col)), np.asarray(rings.write_slots(row, col))
            assert reads.shape == (layers, 3 * convs) and writes.shape == (layers, convs)
            assert not set(reads.ravel()) & set(writes.ravel()) and not set(writes.ravel()) & padding
            first_conv_taps = np.split(reads, 3 * convs, axis=1)[:3]
            for (dr, dc), taps in zip([(-1, -1), (-1, 0), (0, -1)], first_conv_taps, strict=True):
                source = (row + dr, col + dc)
                expected = written_at.get(source) if min(source) >= 0 else None
                if expected is None:  # off the image: the padding column, or row -1 (zeros, never written yet)
                    assert col + dc < 0 or row + dr < 0
                else:
                    np.testing.assert_array_equal(taps[:, 0], expected)
            written_at[(row, col)] = writes[:, 0]
