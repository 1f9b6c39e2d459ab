"""Activations against numpy oracles, and the trainable per-channel parameters of prelu and swish."""

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


# Written from the formulas, in float64; prelu and swish at their initial slope 0.25 and beta 1.
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


def random_input(*shape):
    return np.random.default_rng().normal(scale=3.0, size=shape).astype(np.float32)


def test_every_activation_has_an_oracle_and_a_formula():
    assert set(ORACLES) == set(ACTIVATIONS)
    for name, factory in ACTIVATIONS.items():
        assert factory.__doc__, name


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_matches_oracle(name):
    x = random_input(4, 5, 7)
    act = make_activation(name, 7, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(act(jnp.asarray(x)), ORACLES[name](x.astype(np.float64)), rtol=2e-5, atol=2e-6)


def test_swish_beta_is_a_trainable_parameter_per_channel():
    act = make_activation("swish", 6, rngs=nnx.Rngs(0))
    assert isinstance(act.beta, nnx.Param)
    np.testing.assert_array_equal(act.beta.value, np.ones(6))
    assert [leaf.shape for leaf in jax.tree_util.tree_leaves(nnx.state(act, nnx.Param))] == [(6,)]

    rng = np.random.default_rng()
    x = rng.normal(size=(3, 6)).astype(np.float32)
    beta = rng.uniform(0.5, 2.0, size=6).astype(np.float32)
    act.beta.value = jnp.asarray(beta)
    np.testing.assert_allclose(act(jnp.asarray(x)), x * sigmoid(beta * x), rtol=1e-5, atol=1e-6)


def test_swish_beta_gradient_matches_analytic_and_finite_differences():
    rng = np.random.default_rng()
    x = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    beta = rng.uniform(0.5, 2.0, size=4)
    act = make_activation("swish", 4, rngs=nnx.Rngs(0))
    act.beta.value = jnp.asarray(beta, jnp.float32)

    grad = nnx.grad(lambda module: module(x).sum())(act).beta.value
    x64 = np.asarray(x, np.float64)
    s = sigmoid(beta * x64)
    analytic = (x64 * x64 * s * (1 - s)).sum(0)  # d/dbeta of x sigmoid(beta x) = x^2 s (1 - s)
    assert np.all(np.abs(analytic) > 1e-3)
    np.testing.assert_allclose(grad, analytic, rtol=1e-4)

    def loss(b):
        return (x64 * sigmoid(b * x64)).sum()

    eps = 1e-5
    finite = [(loss(beta + eps * e) - loss(beta - eps * e)) / (2 * eps) for e in np.eye(4)]
    np.testing.assert_allclose(grad, finite, rtol=1e-4)


def test_prelu_slope_is_a_trainable_parameter_per_channel():
    act = make_activation("prelu", 3, rngs=nnx.Rngs(0))
    assert isinstance(act.slope, nnx.Param)
    assert act.slope.value.shape == (3,)
    np.testing.assert_array_equal(act.slope.value, [0.25] * 3)
    act.slope.value = jnp.asarray([0.0, 0.5, 1.0])
    x = -np.abs(random_input(2, 3))
    np.testing.assert_allclose(act(jnp.asarray(x)), x * np.array([0.0, 0.5, 1.0]), rtol=1e-6)
    grad = nnx.grad(lambda module: module(jnp.asarray(x)).sum())(act).slope.value
    np.testing.assert_allclose(grad, x.sum(0), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"prelu", "swish"}))
def test_parameter_free_activations_hold_no_state(name):
    assert not jax.tree_util.tree_leaves(nnx.state(make_activation(name, 4, rngs=nnx.Rngs(0))))


def test_unknown_name_lists_choices():
    choices = "elu, gelu, identity, lrelu, prelu, relu, selu, softplus, swish, swish1, tanh"
    with pytest.raises(UnknownNameError, match=f"^unknown activation 'swsh'; valid choices: {choices}$"):
        make_activation("swsh", 4, rngs=nnx.Rngs(0))
