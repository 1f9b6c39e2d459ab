"""Activations against numpy/scipy oracles, and the trainable parameters of prelu and swish."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import erf

from common.nn.activations import ACTIVATIONS, make_activation
from common.registry import UnknownNameError


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


ORACLES = {
    "relu": lambda x: np.maximum(x, 0),
    "lrelu": lambda x: np.where(x > 0, x, 0.01 * x),
    "prelu": lambda x: np.where(x > 0, x, 0.25 * x),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    "swish": lambda x: x * sigmoid(x),
    "swish1": lambda x: x * sigmoid(x),
    "tanh": np.tanh,
    "identity": lambda x: x,
}


def test_every_activation_has_an_oracle():
    assert set(ORACLES) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_matches_oracle(name):
    x = np.random.default_rng().normal(scale=3.0, size=(4, 5, 7)).astype(np.float32)
    act = make_activation(name, 7, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(act(jnp.asarray(x)), ORACLES[name](x.astype(np.float64)), rtol=2e-5, atol=2e-6)


def test_swish_beta_is_trainable_per_channel():
    act = make_activation("swish", 6, rngs=nnx.Rngs(0))
    params = nnx.state(act, nnx.Param)
    assert jax.tree_util.tree_leaves(params)[0].shape == (6,)
    x = np.random.default_rng().normal(size=(3, 6)).astype(np.float32)
    beta = np.random.default_rng().uniform(0.5, 2.0, size=6).astype(np.float32)
    act.beta.value = jnp.asarray(beta)
    np.testing.assert_allclose(act(jnp.asarray(x)), x * sigmoid(beta * x), rtol=1e-5)

    grads = nnx.grad(lambda m: m(jnp.asarray(x)).sum())(act)
    s = sigmoid(beta * x)
    expected = (x * x * s * (1 - s)).sum(0)  # d/dbeta of x * sigmoid(beta x)
    np.testing.assert_allclose(grads.beta.value, expected, rtol=1e-4)
    assert np.all(np.abs(expected) > 0)


def test_prelu_slope_is_per_channel():
    act = make_activation("prelu", 3, rngs=nnx.Rngs(0))
    act.slope.value = jnp.asarray([0.0, 0.5, 1.0])
    np.testing.assert_allclose(act(-jnp.ones((2, 3))), [[0.0, -0.5, -1.0]] * 2)


def test_parameter_free_activations_hold_no_state():
    assert not jax.tree_util.tree_leaves(nnx.state(make_activation("gelu", 4, rngs=nnx.Rngs(0))))


def test_unknown_name_lists_choices():
    with pytest.raises(UnknownNameError, match=r"unknown activation 'swsh'; valid choices: elu, gelu, identity"):
        make_activation("swsh", 4, rngs=nnx.Rngs(0))
