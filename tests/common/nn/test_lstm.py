"""The LSTM layer against a hand-written numpy LSTM, and the causality a masked language-model loss relies on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn.lstm import LSTMLanguageModel, LSTMLayer


@nnx.jit
def forward(model, tokens):
    """Logits, compiled once per model structure and shape (an eager scan recompiles at every call)."""
    return model(tokens)


def numpy_lstm(inputs, w_input, b_input, w_hidden):
    """inputs [B, L, D] -> outputs [B, L, H], gates in the order i, f, g, o."""
    batch, length, _ = inputs.shape
    hidden_size = w_hidden.shape[0]
    h = np.zeros((batch, hidden_size))
    c = np.zeros((batch, hidden_size))
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    outputs = []
    for t in range(length):
        z = inputs[:, t] @ w_input + b_input + h @ w_hidden
        i, f, g, o = (z[:, k * hidden_size : (k + 1) * hidden_size] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def test_layer_matches_a_numpy_lstm_and_starts_with_forget_bias_one():
    layer = LSTMLayer(3, 5, rngs=nnx.Rngs(0))
    bias = np.asarray(layer.input_proj.bias.value)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    layer.input_proj.bias.value = jax.random.normal(jax.random.key(1), (20,))
    inputs = np.asarray(jax.random.normal(jax.random.key(2), (2, 6, 3)))
    outputs, carry = layer(jnp.asarray(inputs))
    expected = numpy_lstm(
        inputs.astype(np.float64),
        np.asarray(layer.input_proj.kernel.value, np.float64),
        np.asarray(layer.input_proj.bias.value, np.float64),
        np.asarray(layer.hidden_proj.kernel.value, np.float64),
    )
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    np.testing.assert_allclose(carry.hidden, expected[:, -1], atol=1e-5)


def test_mask_freezes_the_carry_after_the_last_real_step():
    layer = LSTMLayer(3, 4, rngs=nnx.Rngs(0))
    inputs = jax.random.normal(jax.random.key(0), (2, 5, 3))
    mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    _, carry = layer(inputs, mask=mask)
    _, short = layer(inputs[:1, :3])
    np.testing.assert_allclose(carry.hidden[0], short.hidden[0], atol=1e-6)
    np.testing.assert_allclose(carry.cell[0], short.cell[0], atol=1e-6)


def test_language_model_shapes_names_and_trailing_padding():
    model = LSTMLanguageModel(11, 6, 8, 2, 0.1, rngs=nnx.Rngs(0))
    assert {"embed", "layers", "softmax"} <= set(nnx.state(model, nnx.Param).to_pure_dict())
    tokens = jnp.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 2, 1]])
    logits = forward(model, tokens)
    assert logits.shape == (2, 6, 11) and logits.dtype == jnp.float32
    padded = jnp.concatenate([tokens[:, :4], jnp.zeros((2, 5), jnp.int32)], axis=1)
    np.testing.assert_allclose(forward(model, padded)[:, :4], logits[:, :4], atol=1e-6)
    # Position t sees tokens <= t only.
    changed = tokens.at[:, 3].set(1)
    np.testing.assert_allclose(forward(model, changed)[:, :3], logits[:, :3], atol=1e-6)
    assert not np.allclose(forward(model, changed)[:, 3], logits[:, 3])


def test_dropout_only_when_not_deterministic():
    model = LSTMLanguageModel(11, 6, 8, 2, 0.5, rngs=nnx.Rngs(0))
    tokens = jnp.array([[3, 4, 5, 6]])
    np.testing.assert_array_equal(model(tokens), model(tokens))
    noisy = model(tokens, deterministic=False, rngs=nnx.Rngs(dropout=1))
    assert not np.allclose(noisy, model(tokens))
    np.testing.assert_array_equal(noisy, model(tokens, deterministic=False, rngs=nnx.Rngs(dropout=1)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dropout must be in"):
        LSTMLanguageModel(11, 6, 8, 2, 1.5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
        LSTMLanguageModel(11, 6, 8, 0, 0.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="tokens must be int"):
        LSTMLanguageModel(11, 6, 8, 1, 0.0, rngs=nnx.Rngs(0))(jnp.zeros((3,), jnp.int32))
