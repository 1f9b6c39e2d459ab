"""Local self-attention: the blockwise kernel against the per-pixel oracle, and the layer's invariants."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import counting, local_attention, resnet
from common.nn.local_attention import (
    LocalSelfAttention,
    blockwise_local_attention,
    local_attention_layer,
    naive_local_attention,
)
from common.registry import UnknownNameError

# (kernel_size, height, width, heads, block_size): odd sizes, blocks that do and do not divide, windows bigger
# than the map.
CASES = [(3, 9, 11, 1, 4), (5, 9, 11, 2, 8), (7, 9, 11, 4, 3), (7, 8, 8, 2, 4), (3, 5, 7, 2, 5)]


POSITIONAL = ["relative", "absolute", "none"]


def _random_qkv(seed, kernel_size, height, width, heads, d=4):
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    q, k, v = (jax.random.normal(keys[i], (2, height, width, heads, d)) for i in range(3))
    rel_row = jax.random.normal(keys[3], (kernel_size, d // 2))
    rel_col = jax.random.normal(keys[4], (kernel_size, d // 2))
    return q, k, v, rel_row, rel_col


def _positional_args(positional, seed, kernel_size, height, width, d=4):
    """(tables, kernel) for one positional option: the tables to differentiate and a kernel wrapper taking them."""
    if positional == "relative":
        tables = tuple(jax.random.normal(jax.random.PRNGKey(seed + i), (kernel_size, d // 2)) for i in (11, 12))
        return tables, lambda fn, q, k, v, r, c: fn(q, k, v, r, c)
    if positional == "absolute":
        size = max(height, width) + 3  # tables longer than the map: only the first rows/columns are used
        tables = tuple(jax.random.normal(jax.random.PRNGKey(seed + i), (size, d // 2)) for i in (11, 12))
        return tables, lambda fn, q, k, v, r, c: fn(q, k, v, None, None, abs_row=r, abs_col=c)
    return (), lambda fn, q, k, v: fn(q, k, v, None, None)


def _value_and_grads(attention, args, cotangent):
    """<attention(*args), cotangent> and its gradients wrt every argument."""
    argnums = tuple(range(len(args)))
    return jax.value_and_grad(lambda *a: jnp.sum(attention(*a) * cotangent), argnums=argnums)(*args)


# Every shape with relative embeddings (the most index arithmetic); two shapes for the other encodings.
SHAPE_CASES = [(*case, "relative") for case in CASES] + [
    (*case, positional) for positional in POSITIONAL[1:] for case in CASES[1:3]
]


@pytest.mark.parametrize(("kernel_size", "height", "width", "heads", "block_size", "positional"), SHAPE_CASES)
def test_blockwise_matches_naive_in_values_and_gradients(kernel_size, height, width, heads, block_size, positional):
    q, k, v, _, _ = _random_qkv(kernel_size + height + heads, kernel_size, height, width, heads)
    tables, call = _positional_args(positional, kernel_size + height, kernel_size, height, width)
    args = (q, k, v, *tables)
    cotangent = jax.random.normal(jax.random.PRNGKey(7), q.shape)
    naive = functools.partial(naive_local_attention, kernel_size=kernel_size)
    blockwise = functools.partial(blockwise_local_attention, kernel_size=kernel_size, block_size=block_size)
    value_n, grads_n = _value_and_grads(functools.partial(call, naive), args, cotangent)
    value_b, grads_b = _value_and_grads(functools.partial(call, blockwise), args, cotangent)
    np.testing.assert_allclose(value_b, value_n, rtol=1e-4, atol=1e-4)
    assert len(grads_b) == len(args)
    for g_b, g_n in zip(grads_b, grads_n, strict=True):
        np.testing.assert_allclose(g_b, g_n, rtol=1e-4, atol=1e-4)


def test_positional_options_compute_different_functions():
    q, k, v, rel_row, rel_col = _random_qkv(0, 3, 6, 7, 1)
    abs_row, abs_col = (jax.random.normal(jax.random.PRNGKey(i), (7, 2)) for i in (1, 2))
    kernel = functools.partial(blockwise_local_attention, kernel_size=3, block_size=4)
    outputs = [
        kernel(q, k, v, rel_row, rel_col),
        kernel(q, k, v, None, None, abs_row=abs_row, abs_col=abs_col),
        kernel(q, k, v, None, None),
    ]
    for i in range(3):
        for j in range(i):
            assert not np.allclose(outputs[i], outputs[j], atol=1e-3)
    # "absolute" is "none" with e(a, b) = concat(e_row[a], e_col[b]) added to the keys.
    table = local_attention.absolute_position_table(abs_row, abs_col, 6, 7)
    np.testing.assert_array_equal(table[4, 5], np.concatenate([abs_row[4], abs_col[5]]))
    np.testing.assert_allclose(outputs[1], kernel(q, k + table[None, :, :, None], v, None, None), atol=1e-6)


@pytest.mark.parametrize("positional", POSITIONAL)
@pytest.mark.parametrize("stride", [1, 2])
def test_layer_blockwise_matches_naive_including_parameter_gradients(stride, positional):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 11, 6))
    layers = {
        impl: LocalSelfAttention(
            6,
            8,
            kernel_size=5,
            num_heads=2,
            stride=stride,
            block_size=4,
            implementation=impl,
            positional=positional,
            max_positions=16,
            rngs=nnx.Rngs(3),
        )
        for impl in ("naive", "blockwise")
    }
    outputs, grads = {}, {}
    for impl, layer in layers.items():

        def loss(layer, x):
            return jnp.sum(jnp.sin(layer(x)))

        outputs[impl] = layer(x)
        grads[impl] = nnx.grad(loss, argnums=(0, 1))(layer, x)
    assert outputs["blockwise"].shape == (2, -(-9 // stride), -(-11 // stride), 8)
    np.testing.assert_allclose(outputs["blockwise"], outputs["naive"], rtol=1e-4, atol=1e-5)
    param_grads = [jax.tree_util.tree_leaves(grads[impl][0]) for impl in ("naive", "blockwise")]
    assert len(param_grads[0]) == (3 if positional == "none" else 5)  # query, key, value (+ two tables)
    for g_n, g_b in zip(*param_grads, strict=True):
        assert np.any(g_n != 0)
        np.testing.assert_allclose(g_b, g_n, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["blockwise"][1], grads["naive"][1], rtol=1e-4, atol=1e-5)


def test_default_block_size_rule():
    assert local_attention.default_block_size(7, 56, 56) == 4
    assert local_attention.default_block_size(7, 28, 28) == 4
    assert local_attention.default_block_size(11, 28, 28) == 6
    assert local_attention.default_block_size(7, 7, 7) == 7  # the whole map is one block
    assert local_attention.default_block_size(3, 5, 8) == 8
    layer = LocalSelfAttention(4, 8, kernel_size=5, num_heads=2, rngs=nnx.Rngs(0))  # block_size=None: the rule
    naive = LocalSelfAttention(4, 8, kernel_size=5, num_heads=2, implementation="naive", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(2), (1, 13, 10, 4))
    np.testing.assert_allclose(layer(x), naive(x), rtol=1e-4, atol=1e-5)


def test_absolute_tables_must_cover_the_map():
    layer = LocalSelfAttention(
        4, 8, kernel_size=3, num_heads=2, positional="absolute", max_positions=8, rngs=nnx.Rngs(0)
    )
    assert layer(jnp.ones((1, 8, 8, 4))).shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match="max_positions"):
        layer(jnp.ones((1, 9, 8, 4)))
    with pytest.raises(ValueError, match="valid choices"):
        LocalSelfAttention(4, 8, kernel_size=3, num_heads=2, positional="learned", rngs=nnx.Rngs(0))


def test_bad_names_fail_with_the_valid_choices():
    with pytest.raises(
        UnknownNameError, match="unknown positional encoding 'learned'; valid choices: absolute, none, relative"
    ):
        LocalSelfAttention(4, 8, kernel_size=3, num_heads=2, positional="learned", rngs=nnx.Rngs(0))
    with pytest.raises(UnknownNameError, match="unknown implementation 'pallas'; valid choices: blockwise, naive"):
        LocalSelfAttention(4, 8, kernel_size=3, num_heads=2, implementation="pallas", rngs=nnx.Rngs(0))


def test_relative_logits_are_a_gather_of_the_row_and_column_tables():
    """With zero keys and one in-window key per query, the logits reduce to q . concat(r_row[a], r_col[b])."""
    kernel_size, d = 5, 6
    rel_row = jax.random.normal(jax.random.PRNGKey(0), (kernel_size, d // 2))
    rel_col = jax.random.normal(jax.random.PRNGKey(1), (kernel_size, d // 2))
    table = local_attention.full_relative_table(rel_row, rel_col)
    for a in range(kernel_size):
        for b in range(kernel_size):
            np.testing.assert_array_equal(table[a, b], np.concatenate([rel_row[a], rel_col[b]]))
    # End to end: zero keys, values = one-hot of the pixel index, so the output is the softmax over the window of
    # q . r(a, b); compare it with softmax of the explicitly gathered relative logits at an interior pixel.
    h = w = 7
    q = jax.random.normal(jax.random.PRNGKey(2), (1, h, w, 1, d))
    k = jnp.zeros((1, h, w, 1, d))
    v = jnp.eye(h * w).reshape(1, h, w, 1, h * w)
    out = blockwise_local_attention(q, k, v, rel_row, rel_col, kernel_size=kernel_size, block_size=3)
    pad = kernel_size // 2
    i, j = 3, 3
    expected = np.zeros((h, w))
    logits = np.array([[q[0, i, j, 0] @ table[a, b] for b in range(kernel_size)] for a in range(kernel_size)])
    weights = np.exp(logits - logits.max())
    expected[i - pad : i + pad + 1, j - pad : j + pad + 1] = weights / weights.sum()
    np.testing.assert_allclose(out[0, i, j, 0].reshape(h, w), expected, rtol=1e-5, atol=1e-6)


def test_padded_keys_are_masked_so_a_corner_attends_only_inside_the_image():
    q, k, _, rel_row, rel_col = _random_qkv(0, 5, 6, 6, 1)
    v = jnp.eye(36).reshape(1, 6, 6, 1, 36)
    q, k = q[:1], k[:1]
    weights = blockwise_local_attention(q, k, v, rel_row, rel_col, kernel_size=5, block_size=4)[0, 0, 0, 0]
    weights = np.asarray(weights).reshape(6, 6)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-5)
    assert np.all(weights[3:, :] == 0) and np.all(weights[:, 3:] == 0)  # only the 3x3 in-image corner
    assert np.all(weights[:3, :3] > 0)


def test_translation_equivariance_away_from_borders():
    layer = LocalSelfAttention(4, 8, kernel_size=5, num_heads=2, block_size=4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(5), (1, 16, 17, 4))
    shifted = jnp.roll(x, shift=(1, 2), axis=(1, 2))
    y, y_shifted = layer(x), layer(shifted)
    pad = 2  # outputs whose window never reaches a border or the wrapped-around pixels
    np.testing.assert_allclose(
        y_shifted[:, 1 + pad + 1 : -pad, 2 + pad + 2 : -pad], y[:, pad + 1 : -pad - 1, pad + 2 : -pad - 2], atol=1e-5
    )


def test_parameter_count_depends_on_the_kernel_size_only_through_the_tables():
    counts = {
        k: counting.count_params(LocalSelfAttention(16, 32, kernel_size=k, num_heads=4, rngs=nnx.Rngs(0)))
        for k in (3, 5, 7)
    }
    head = 32 // 4
    for k, count in counts.items():
        assert count == 3 * 16 * 32 + k * head == local_attention.attention_param_count(16, 32, k, 4)
    for positional, table_rows in (("none", 0), ("absolute", 20)):
        layer = LocalSelfAttention(
            16, 32, kernel_size=7, num_heads=4, positional=positional, max_positions=20, rngs=nnx.Rngs(0)
        )
        expected = local_attention.attention_param_count(16, 32, 7, 4, positional, max_positions=20)
        assert counting.count_params(layer) == 3 * 16 * 32 + table_rows * head == expected


@pytest.mark.long
def test_resnet50_with_attention_stem_and_layers_builds_and_runs():
    model = nnx.eval_shape(
        lambda: resnet.make_resnet(
            "resnet50",
            num_classes=1000,
            in_features=3,
            stem="attention",
            spatial_layer=local_attention_layer(7, 8),
            rngs=nnx.Rngs(0),
        )
    )
    assert abs(counting.count_params(model) - 18.0e6) / 18.0e6 < 0.01
    tiny = resnet.make_resnet(
        "resnet26",
        num_classes=10,
        in_features=1,
        stem="attention",
        width=8,
        spatial_layer=local_attention_layer(3, 2, block_size=4),
        rngs=nnx.Rngs(0),
    )
    assert tiny(jnp.ones((2, 30, 29, 1))).shape == (2, 10)


def test_attention_stem_has_output_stride_four_and_position_dependent_values():
    options = resnet.BlockOptions(resnet.conv3x3, "relu", 0.9, True, jnp.float32)
    stem = local_attention.AttentionStem(3, 16, options, rngs=nnx.Rngs(0))
    assert stem(jnp.ones((2, 10, 13, 3))).shape == (2, 3, 4, 16)
    weights = stem.value_weights()
    assert weights.shape == (4, 4, 3, 16)
    assert not np.allclose(weights[0, 0], weights[3, 2])  # spatially aware: the value projection moves with (a, b)


@pytest.mark.parametrize("kernel_size", [0, 4])
def test_even_or_empty_windows_are_rejected(kernel_size):
    with pytest.raises(ValueError, match="odd"):
        LocalSelfAttention(4, 8, kernel_size=kernel_size, num_heads=2, rngs=nnx.Rngs(0))
