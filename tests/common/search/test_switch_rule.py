"""Switched rule layers (common/search/backward.py): a layer whose rule is picked by a traced index gives, for each
index, exactly the single-rule layer's gradients, and vmapped over K weight sets with K indices each slice equals
the single-rule computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.search import backward

RULES = (
    backward.backprop,
    lambda operands: operands["g"] * jnp.tanh(operands["dact"]),
    lambda operands: jnp.sign(operands["g"]) * operands["dact"] + 0.1 * operands["noise"],
    lambda operands: jnp.minimum(operands["g"], jnp.tanh(operands["w_rms"])),
)
NOISY_RULE = 2
LAYERS = [(backward.dense, (6, 5), (8, 6)), (backward.conv(2, 1), (3, 3, 2, 4), (2, 6, 6, 2))]


def _inputs(w_shape, x_shape, seed=0):
    kx, kw = jax.random.split(jax.random.key(seed))
    w = jax.random.normal(kw, w_shape) / np.sqrt(np.prod(w_shape[:-1]))
    return jax.random.normal(kx, x_shape), w, jnp.full(w_shape[-1], 0.05)


def _loss(layer, *args):
    """A loss whose gradient g differs per unit, so every operand matters."""
    h = layer(*args)
    return jnp.sum(jnp.sin(h) * jnp.arange(h.shape[-1]))


@pytest.mark.parametrize("linear, w_shape, x_shape", LAYERS)
def test_each_index_gives_the_single_rule_gradients_exactly(linear, w_shape, x_shape):
    x, w, b = _inputs(w_shape, x_shape)
    switched = backward.switch_rule_layer(linear, jax.nn.relu, RULES)
    grad = jax.jit(jax.grad(_loss, argnums=(1, 2, 3)), static_argnums=0)
    for index, rule in enumerate(RULES):
        single = grad(backward.rule_layer(linear, jax.nn.relu, rule), x, w, b)
        chosen = grad(switched, x, w, b, jnp.int32(index))
        for expected, actual in zip(single, chosen, strict=True):
            if index == NOISY_RULE:  # XLA fuses the noise's generation into the rule differently: a few ulp
                np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("linear, w_shape, x_shape", LAYERS)
def test_vmapped_over_stacked_weights_and_indices_matches_each_rule_alone(linear, w_shape, x_shape):
    stacked = [_inputs(w_shape, x_shape, seed) for seed in range(len(RULES))]
    xs, ws, bs = (jnp.stack(parts) for parts in zip(*stacked, strict=True))
    indices = jnp.array([2, 0, 3, 1], jnp.int32)
    switched = backward.switch_rule_layer(linear, jax.nn.relu, RULES)
    grad = jax.grad(lambda x, w, b, i: _loss(switched, x, w, b, i), argnums=(0, 1, 2))
    batched = jax.jit(jax.vmap(grad))(xs, ws, bs, indices)
    for k, index in enumerate(indices.tolist()):
        alone = jax.grad(_loss, argnums=(1, 2, 3))(backward.rule_layer(linear, jax.nn.relu, RULES[index]), *stacked[k])
        for expected, actual in zip(alone, batched, strict=True):
            np.testing.assert_allclose(actual[k], expected, rtol=1e-5, atol=1e-6)


def test_rule_index_is_state_and_select_rule_sets_every_layer():
    layers = [
        backward.RuleDense(4, 3, rule=RULES, rngs=nnx.Rngs(0)),
        backward.RuleConv(2, 3, rule=RULES, rngs=nnx.Rngs(0)),
    ]
    for layer in layers:
        assert int(layer.rule_index.value) == 0
        backward.select_rule(layer, 2)
        assert int(nnx.state(layer, backward.RuleIndex)["rule_index"].value) == 2
    assert backward.RuleDense(4, 3, rule=backward.backprop, rngs=nnx.Rngs(0)).rule_index is None


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="no switched rule layer"):
        backward.select_rule(backward.RuleDense(4, 3, rule=backward.backprop, rngs=nnx.Rngs(0)), 1)
    with pytest.raises(ValueError, match="at least one rule"):
        backward.switch_rule_layer(backward.dense, jax.nn.relu, ())
