"""Low-rank and dense locally connected layers against direct per-position oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from flax import nnx

from common.nn.locally_connected import (
    COMBININGS,
    LocallyConnected2D,
    LowRankLocallyConnected2D,
    matched_conv_width,
    output_size_and_padding,
    resize_bilinear_align_corners,
)
from common.registry import UnknownNameError

STATIC_COMBININGS = [c for c in COMBININGS if c != "input_dependent"]


def randomise(layer: nnx.Module, seed: int = 0) -> nnx.Module:
    """Replaces every parameter with N(0, 0.5) noise (the constant initial tables would hide indexing errors)."""
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [0.5 * jax.random.normal(key, leaf.shape, leaf.dtype) for key, leaf in zip(keys, leaves, strict=True)]
    return nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, noisy), rest)


def per_position_oracle(x: np.ndarray, kernels: np.ndarray, bias: np.ndarray, stride: int, padding: str):
    """float64 loop: y[n, i, j] = sum(window(i, j) * kernels[i, j]) + bias[i, j].

    x [N, H, W, Cin]; kernels [H', W', kh, kw, Cin, Cout] (or [N, H', W', ...] per example); bias [H', W', Cout].
    """
    x = np.asarray(x, np.float64)
    kernels = np.asarray(kernels, np.float64)
    kh, kw = kernels.shape[-4:-2]
    (out_h, pad_h), (out_w, pad_w) = (
        output_size_and_padding(n, k, stride, padding) for n, k in zip(x.shape[1:3], (kh, kw), strict=True)
    )
    x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    y = np.zeros((x.shape[0], out_h, out_w, kernels.shape[-1]))
    for n in range(x.shape[0]):
        bank = kernels[n] if kernels.ndim == 7 else kernels
        for i in range(out_h):
            for j in range(out_w):
                window = x[n, i * stride : i * stride + kh, j * stride : j * stride + kw]
                y[n, i, j] = np.einsum("abc,abcd->d", window, bank[i, j]) + bias[i, j]
    return y


def lrlc_kernels_and_bias(layer: LowRankLocallyConnected2D, x: jax.Array | None = None):
    """The per-position kernels tensordot(w_ij, bases) and the full bias (spatial + channel) of an LRLC layer."""
    kh, kw, cin, _ = layer.bases.value.shape
    bases = np.asarray(layer.bases.value).reshape(kh, kw, cin, layer.rank, layer.out_features)
    weights = np.asarray(layer.combining_weights(x))
    kernels = np.tensordot(weights, bases, axes=[[-1], [3]])  # [(N,) H', W', kh, kw, Cin, Cout]
    bias = np.zeros((*layer.output_size, layer.out_features))
    bias += sum(np.asarray(table.value) for table in layer.spatial_bias.values())
    if layer.channel_bias is not None:
        bias += np.asarray(layer.channel_bias.value)
    return kernels, bias


def random_input(shape, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


# (input [N, H, W, Cin], Cout, kernel, rank, stride, padding)
CASES = [
    ((2, 7, 6, 3), 4, 3, 3, 1, "VALID"),
    ((1, 9, 9, 2), 5, (3, 2), 2, 2, "VALID"),
    ((2, 6, 7, 2), 3, 3, 4, 1, "SAME"),
    ((1, 8, 8, 1), 2, 3, 1, 2, "SAME"),
]


@pytest.mark.parametrize("combining", STATIC_COMBININGS)
@pytest.mark.parametrize(("shape", "cout", "kernel", "rank", "stride", "padding"), CASES)
def test_lrlc_equals_locally_connected_layer_with_combined_kernels(
    combining, shape, cout, kernel, rank, stride, padding
):
    layer = LowRankLocallyConnected2D(
        shape[-1],
        cout,
        kernel,
        input_size=shape[1:3],
        rank=rank,
        combining=combining,
        stride=stride,
        padding=padding,
        rngs=nnx.Rngs(0),
    )
    layer = randomise(layer)
    x = random_input(shape)
    kernels, bias = lrlc_kernels_and_bias(layer)
    expected = per_position_oracle(x, kernels, bias, stride, padding)
    np.testing.assert_allclose(layer(x), expected, atol=1e-5, rtol=1e-5)

    dense = LocallyConnected2D(
        shape[-1], cout, kernel, input_size=shape[1:3], stride=stride, padding=padding, rngs=nnx.Rngs(0)
    )
    dense.kernel.value = jnp.asarray(kernels, jnp.float32)
    dense.bias.value = jnp.asarray(bias, jnp.float32)
    np.testing.assert_allclose(layer(x), dense(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("combining", STATIC_COMBININGS)
def test_rank_one_softmax_is_a_convolution(combining):
    layer = randomise(
        LowRankLocallyConnected2D(3, 4, 3, input_size=(8, 7), rank=1, combining=combining, rngs=nnx.Rngs(0))
    )
    x = random_input((2, 8, 7, 3))
    conv = jax.lax.conv_general_dilated(
        x, layer.bases.value, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    bias = sum(table.value for table in layer.spatial_bias.values()) + layer.channel_bias.value
    np.testing.assert_allclose(layer(x), conv + bias, atol=1e-5, rtol=1e-5)


def test_initial_layer_is_the_convolution_with_the_mean_basis():
    layer = LowRankLocallyConnected2D(2, 3, 3, input_size=6, rank=4, rngs=nnx.Rngs(0))
    x = random_input((2, 6, 6, 2))
    mean_basis = layer.bases.value.reshape(3, 3, 2, 4, 3).mean(axis=3)
    conv = jax.lax.conv_general_dilated(x, mean_basis, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(layer(x), conv, atol=1e-5, rtol=1e-5)


def test_row_column_tables_equal_the_full_table_of_their_sums():
    separable = randomise(LowRankLocallyConnected2D(2, 3, 3, input_size=(7, 9), rank=3, rngs=nnx.Rngs(0)))
    full = LowRankLocallyConnected2D(2, 3, 3, input_size=(7, 9), rank=3, combining="full", rngs=nnx.Rngs(1))
    full.bases.value = separable.bases.value
    full.channel_bias.value = separable.channel_bias.value
    alpha, beta = separable.weight_tables["row"].value, separable.weight_tables["column"].value  # [H',1,K], [1,W',K]
    full.weight_tables["full"].value = alpha + beta
    full.spatial_bias["full"].value = separable.spatial_bias["row"].value + separable.spatial_bias["column"].value
    assert full.weight_tables["full"].value.shape == (5, 7, 3)
    x = random_input((2, 7, 9, 2))
    np.testing.assert_allclose(separable(x), full(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("combining", COMBININGS)
def test_softmax_weights_sum_to_one_and_l2_weights_have_unit_norm(combining):
    x = random_input((3, 10, 10, 2))
    softmax, l2, raw = (
        randomise(
            LowRankLocallyConnected2D(
                2, 2, 3, input_size=10, rank=5, combining=combining, normalisation=n, rngs=nnx.Rngs(0)
            )
        ).combining_weights(x)
        for n in ("softmax", "l2", "none")
    )
    np.testing.assert_allclose(softmax.sum(-1), 1.0, atol=1e-6)
    assert (softmax > 0).all()
    np.testing.assert_allclose(jnp.linalg.norm(l2, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(l2, raw / jnp.linalg.norm(raw, axis=-1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(softmax, jax.nn.softmax(raw, axis=-1), atol=1e-6)
    assert float(jnp.abs(raw.sum(-1) - 1).max()) > 1e-2  # "none" really leaves them unnormalised


@pytest.mark.long
def test_input_dependent_weights_differ_across_examples_and_drive_the_output():
    layer = randomise(
        LowRankLocallyConnected2D(3, 4, 3, input_size=10, rank=4, combining="input_dependent", rngs=nnx.Rngs(0))
    )
    x = random_input((2, 10, 10, 3))
    weights = layer.combining_weights(x)
    assert weights.shape == (2, 8, 8, 4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert float(jnp.abs(weights[0] - weights[1]).max()) > 1e-3
    kernels, bias = lrlc_kernels_and_bias(layer, x)
    np.testing.assert_allclose(layer(x), per_position_oracle(x, kernels, bias, 1, "VALID"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("size", "dilations"), [(17, (1, 2, 4, 8)), (16, (1, 2, 4)), (10, (1, 2, 4)), (5, (1, 2))])
def test_input_dependent_network_keeps_the_dilations_that_fit(size, dilations):
    layer = LowRankLocallyConnected2D(1, 2, 3, input_size=size, rank=2, combining="input_dependent", rngs=nnx.Rngs(0))
    assert layer.weight_network.dilations == dilations  # r <= (size - 1) // 2, as in the paper's code


@pytest.mark.parametrize(("in_size", "out_size"), [((5, 4), (9, 7)), ((6, 6), (3, 4)), ((1, 1), (4, 3))])
def test_resize_matches_tensorflow_align_corners(in_size, out_size):
    x = np.random.default_rng(0).normal(size=(2, *in_size, 3)).astype(np.float32)
    expected = tf.compat.v1.image.resize_bilinear(x, out_size, align_corners=True).numpy()
    np.testing.assert_allclose(resize_bilinear_align_corners(jnp.asarray(x), out_size), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "cout", "kernel", "stride", "padding"), [(s, c, k, st, p) for s, c, k, _, st, p in CASES]
)
def test_dense_locally_connected_equals_per_position_loop(shape, cout, kernel, stride, padding):
    layer = randomise(
        LocallyConnected2D(
            shape[-1], cout, kernel, input_size=shape[1:3], stride=stride, padding=padding, rngs=nnx.Rngs(0)
        )
    )
    x = random_input(shape)
    expected = per_position_oracle(x, np.asarray(layer.kernel.value), np.asarray(layer.bias.value), stride, padding)
    np.testing.assert_allclose(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_bad_options_and_shapes_fail_clearly():
    def lrlc(**kwargs):
        return LowRankLocallyConnected2D(2, 3, 3, **{"input_size": 8, "rank": 2, "rngs": nnx.Rngs(0), **kwargs})

    with pytest.raises(UnknownNameError, match="unknown combining-weight parameterisation 'rows'; valid choices: "):
        lrlc(combining="rows")
    with pytest.raises(UnknownNameError, match="unknown combining-weight normalisation 'norm'; valid choices: l2, "):
        lrlc(normalisation="norm")
    with pytest.raises(UnknownNameError, match="unknown padding 'FULL'; valid choices: SAME, VALID"):
        lrlc(padding="full")
    with pytest.raises(ValueError, match="rank must be >= 1, got 0"):
        lrlc(rank=0)
    with pytest.raises(ValueError, match="input size 2 is smaller than the kernel 3"):
        lrlc(input_size=2)
    with pytest.raises(ValueError, match=r"built for inputs \[N, 8, 8, 2\], got \(1, 8, 9, 2\)"):
        lrlc()(jnp.zeros((1, 8, 9, 2)))
    with pytest.raises(ValueError, match=r"LocallyConnected2D was built for inputs \[N, 8, 8, 2\], got \(1, 8, 8, 3\)"):
        LocallyConnected2D(2, 3, 3, input_size=8, rngs=nnx.Rngs(0))(jnp.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="need the layer input"):
        lrlc(combining="input_dependent").combining_weights()


@pytest.mark.parametrize(("in_features", "num_layers", "width"), [(1, 3, 37), (64, 1, 100), (3, 2, 5)])
def test_matched_conv_width_recovers_the_width_of_an_exact_count(in_features, num_layers, width):
    count = 9 * (in_features * width + (num_layers - 1) * width * width)
    assert matched_conv_width(count, in_features, 3, num_layers) == width
    assert matched_conv_width(count + 1, in_features, 3, num_layers) == width  # the nearest count wins
    with pytest.raises(ValueError, match="target_params >= 1"):
        matched_conv_width(0, in_features, 3, num_layers)
