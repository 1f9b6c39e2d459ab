"""The activation search space: every primitive against its formula, compilation, naming and rejection."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import resnet
from papers.swish import search, search_space
from papers.swish.search_space import CoreUnit

BETA = 0.7
EPS = search_space.EPS


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# Written from the paper's list, independently of search_space; numpy float64.
UNARY_FORMULAS = {
    "x": lambda x: x,
    "neg": lambda x: -x,
    "abs": np.abs,
    "square": lambda x: x**2,
    "cube": lambda x: x**3,
    "sqrt": np.sqrt,
    "beta_mul": lambda x: BETA * x,
    "beta_add": lambda x: x + BETA,
    "log_abs": lambda x: np.log(np.abs(x) + EPS),
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "atan": np.arctan,
    "sinc": lambda x: np.sin(x) / x,
    "max0": lambda x: np.maximum(x, 0),
    "min0": lambda x: np.minimum(x, 0),
    "sigmoid": _sigmoid,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "gauss": lambda x: np.exp(-(x**2)),
    "erf": np.vectorize(math.erf),
    "beta": lambda x: np.full_like(x, BETA),
}
BINARY_FORMULAS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "sub": lambda a, b: a - b,
    "div": lambda a, b: a / (b + EPS),
    "max": np.maximum,
    "min": np.minimum,
    "sigmoid_mul": lambda a, b: _sigmoid(a) * b,
    "gauss_diff": lambda a, b: np.exp(-BETA * (a - b) ** 2),
    "laplace_diff": lambda a, b: np.exp(-BETA * np.abs(a - b)),
    "mix": lambda a, b: BETA * a + (1 - BETA) * b,
}
# Away from kinks (0 for abs / max / min) and inside every domain (sqrt needs x > 0).
POINTS = np.array([-2.3, -0.7, 0.45, 1.9])
POSITIVE_POINTS = np.array([0.3, 0.8, 1.7, 2.9])
PAIRS = [(-1.3, 0.4), (0.9, -0.6), (2.1, 1.2), (-0.5, -1.7)]


def _finite_difference(fn, x, h=1e-5):
    return (fn(x + h) - fn(x - h)) / (2 * h)


def test_the_tables_hold_the_papers_25_unary_and_10_binary_functions():
    assert set(search_space.UNARY) == set(UNARY_FORMULAS) and len(UNARY_FORMULAS) == 25
    assert set(search_space.BINARY) == set(BINARY_FORMULAS) and len(BINARY_FORMULAS) == 10


@pytest.mark.parametrize("name", sorted(UNARY_FORMULAS))
def test_unary_value_and_gradient_match_the_formula(name):
    points = POSITIVE_POINTS if name == "sqrt" else POINTS
    primitive = search_space.UNARY[name]
    beta = jnp.float32(BETA)
    values = jax.vmap(lambda x: primitive.fn(x, beta))(jnp.asarray(points, jnp.float32))
    np.testing.assert_allclose(values, UNARY_FORMULAS[name](points), rtol=1e-5, atol=1e-6)
    grads = jax.vmap(jax.grad(lambda x: primitive.fn(x, beta)))(jnp.asarray(points, jnp.float32))
    np.testing.assert_allclose(grads, _finite_difference(UNARY_FORMULAS[name], points), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BINARY_FORMULAS))
def test_binary_value_and_gradients_match_the_formula(name):
    primitive = search_space.BINARY[name]
    formula = BINARY_FORMULAS[name]
    beta = jnp.float32(BETA)
    for a, b in PAIRS:
        value = primitive.fn(jnp.float32(a), jnp.float32(b), beta)
        np.testing.assert_allclose(value, formula(a, b), rtol=1e-5, atol=1e-6)
        grad_a, grad_b = jax.grad(lambda p, q: primitive.fn(p, q, beta), argnums=(0, 1))(jnp.float32(a), jnp.float32(b))
        np.testing.assert_allclose(grad_a, _finite_difference(lambda p, b=b: formula(p, b), a), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grad_b, _finite_difference(lambda q, a=a: formula(a, q), b), rtol=1e-4, atol=1e-5)


def test_beta_gradient_flows_to_the_per_channel_parameter():
    swish = search_space.from_spec("search:sigmoid_mul.0.beta_mul.0.x")
    act = search_space.CandidateActivation(swish, 3, rngs=nnx.Rngs(0))
    x = jnp.asarray([[-1.0, 0.5, 2.0]])
    np.testing.assert_allclose(act(x), x * jax.nn.sigmoid(x), rtol=1e-6)  # beta starts at 1
    grads = nnx.grad(lambda m: m(x).sum())(act)
    # d/dbeta [x sigmoid(beta x)] = x^2 sigmoid'(beta x), per channel
    s = jax.nn.sigmoid(x)
    np.testing.assert_allclose(grads.beta.value, x**2 * s * (1 - s), rtol=1e-5)


def random_candidate(rng: np.random.Generator, num_units: int) -> search_space.Candidate:
    units = []
    for i in range(num_units):
        units.append(
            CoreUnit(
                rng.choice(list(search_space.BINARY)),
                int(rng.integers(0, i + 1)),
                rng.choice(list(search_space.UNARY)),
                int(rng.integers(0, i + 1)),
                rng.choice(list(search_space.UNARY)),
            )
        )
    return search_space.validate(units)


@pytest.mark.long
def test_random_candidates_compile_and_run_as_resnet_activations():
    rng = np.random.default_rng(0)
    accepted = []
    while len(accepted) < 4:
        candidate = random_candidate(rng, int(rng.integers(1, 4)))
        spec = search_space.to_spec(candidate)
        assert search_space.from_spec(spec) == candidate
        if search_space.check_candidate(candidate) is None:
            accepted.append(candidate)
    x = jax.random.normal(jax.random.key(0), (2, 3, 3, 5))
    for candidate in accepted:
        act = search_space.CandidateActivation(candidate, 5, rngs=nnx.Rngs(0))
        y = nnx.jit(lambda m, x: m(x))(act, x)
        assert y.shape == x.shape and bool(jnp.all(jnp.isfinite(y))), search_space.readable_name(candidate)
    # One of them drives a whole ResNet through the config's activation field.
    net = resnet.make_resnet(
        "resnet_tiny",
        num_classes=10,
        in_features=1,
        activation=search_space.resolve_activation(search_space.to_spec(accepted[0])),
        rngs=nnx.Rngs(0),
    )
    logits = net(jnp.ones((2, 8, 8, 1)))
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("search:sub.0.x.0.x", "constant"),  # x - x
        ("search:add.0.beta.0.beta", "constant"),  # beta + beta
        ("search:mul.0.sqrt.0.x", "non-finite"),  # sqrt(x) is NaN for x < 0
        ("search:mul.0.exp.0.exp+mul.1.exp.1.exp", "non-finite"),  # exp(exp(2x))^2 overflows
        ("search:add.0.sqrt.0.x+add.1.x.0.abs", "non-finite"),  # NaN in an earlier unit reaches the output
        ("search:add.0.abs.0.x+mul.1.sqrt.1.x", "non-differentiable"),  # sqrt(|x| + x): infinite slope at 0
        ("search:max.0.min0.0.beta_add+add.1.x.0.min0", None),  # a live function is accepted
        ("search:sigmoid_mul.0.beta_mul.0.x", None),
    ],
)
def test_degenerate_candidates_are_rejected_with_a_reason(spec, reason):
    outcome = search_space.check_candidate(search_space.from_spec(spec))
    if reason is None:
        assert outcome is None
    else:
        assert outcome is not None and outcome.startswith(reason), outcome


def test_readable_names_and_canonical_keys():
    swish = search_space.from_spec("search:sigmoid_mul.0.beta_mul.0.x")
    assert search_space.readable_name(swish) == "sigmoid(beta * x) * x"
    # operand order of a commutative binary does not change the name (the cache key); of a non-commutative one it does
    a = search_space.from_spec("search:mul.0.x.0.sigmoid")
    b = search_space.from_spec("search:mul.0.sigmoid.0.x")
    assert search_space.readable_name(a) == search_space.readable_name(b) == "sigmoid(x) * x"
    assert search_space.readable_name(search_space.from_spec("search:sub.0.cos.0.x")) == "cos(x) - x"
    assert search_space.readable_name(search_space.from_spec("search:sub.0.x.0.cos")) == "x - cos(x)"
    two_units = search_space.from_spec("search:add.0.x.0.square+max.1.x.0.sin")
    assert search_space.readable_name(two_units) == "max((x + x^2), sin(x))"


def test_swish_like_detection_finds_swish_in_any_form():
    assert search.is_swish_like(search_space.from_spec("search:sigmoid_mul.0.beta_mul.0.x"))
    assert search.is_swish_like(search_space.from_spec("search:mul.0.x.0.sigmoid"))  # Swish-1
    assert search.is_swish_like(search_space.from_spec("search:sigmoid_mul.0.x.0.x"))
    assert not search.is_swish_like(search_space.from_spec("search:mul.0.x.0.tanh"))
    assert not search.is_swish_like(search_space.from_spec("search:sigmoid_mul.0.beta_mul.0.beta_mul"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("search:plus.0.x.0.x", "unknown binary function 'plus'; valid choices: add, div,"),
        ("search:add.0.x.0.sqr", "unknown unary function 'sqr'; valid choices: abs, asinh,"),
        ("search:add.1.x.0.x", "core unit 1 reads input 1; valid inputs are 0 (x) to 0"),
        ("search:add.0.x.0", "is not <binary>.<input1>.<unary1>.<input2>.<unary2>"),
        ("swish:add.0.x.0.x", "must start with 'search:'"),
    ],
)
def test_bad_specs_fail_naming_the_bad_value_and_the_choices(spec, message):
    with pytest.raises(ValueError) as error:
        search_space.from_spec(spec)
    assert message in str(error.value)
