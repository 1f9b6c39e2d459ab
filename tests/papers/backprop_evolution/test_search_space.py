"""The backward-rule language: primitives forward, rejection reasons, valid mutations, evolution on a toy fitness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.registry import UnknownNameError
from common.search import backward, evolution, expressions
from papers.backprop_evolution import search_space
from papers.backprop_evolution.config import get_config

CONFIG = get_config("search")
VOCABULARY = search_space.vocabulary(CONFIG.search.binaries, CONFIG.search.unaries, CONFIG.search.num_units)
V = jnp.asarray([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]])  # [B=3, N=2]
W = jnp.asarray([[0.5, 2.0], [-0.25, -1.0], [1.0, 1.0]])

UNARY_EXPECTED = {
    "x": V,
    "neg": -V,
    "abs": jnp.abs(V),
    "square": V * V,
    "sign": jnp.sign(V),
    "signed_sqrt": jnp.sign(V) * jnp.sqrt(jnp.abs(V)),
    "tanh": jnp.tanh(V),
    "sigmoid": 1 / (1 + jnp.exp(-V)),
    "max0": jnp.where(V > 0, V, 0.0),
    "min0": jnp.where(V < 0, V, 0.0),
    "clip": jnp.asarray([[1.0, -1.0], [1.0, 0.5], [-1.0, 1.0]]),
    "batch_norm": (V - V.mean(0)) / V.std(0),
    "example_norm": V / jnp.sqrt(jnp.mean(V * V, axis=1, keepdims=True)),
    "tensor_norm": V / jnp.sqrt(jnp.mean(V * V)),
}
BINARY_EXPECTED = {
    "add": V + W,
    "sub": V - W,
    "mul": V * W,
    "div": V / jnp.abs(W),
    "max": jnp.maximum(V, W),
    "min": jnp.minimum(V, W),
    "left": V,
}


def test_every_primitive_is_tested():
    assert set(UNARY_EXPECTED) == set(search_space.UNARY)
    assert set(BINARY_EXPECTED) == set(search_space.BINARY)


@pytest.mark.parametrize("name", sorted(UNARY_EXPECTED))
def test_unary_forward(name):
    np.testing.assert_allclose(search_space.UNARY[name].fn(V, None), UNARY_EXPECTED[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BINARY_EXPECTED))
def test_binary_forward(name):
    np.testing.assert_allclose(search_space.BINARY[name].fn(V, W, None), BINARY_EXPECTED[name], rtol=1e-5)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("rule:mul.0.sign.3.x", lambda o: jnp.sign(o["g"]) * o["dact"]),
        ("rule:add.0.batch_norm.6.x", lambda o: search_space._batch_norm(o["g"]) + o["noise"]),
        ("rule:mul.0.x.3.x+div.7.x.4.x", lambda o: o["g"] * o["dact"] / (jnp.abs(o["x_rms"]) + search_space.EPS)),
    ],
)
def test_equations_as_backward_rules(spec, expected):
    """A compiled equation in a layer's backward pass: dW = x^T delta with delta computed from the real operands."""
    rule = search_space.resolve_rule(spec)
    x = jax.random.normal(jax.random.key(0), (4, 3))
    w = jax.random.normal(jax.random.key(1), (3, 2))
    b = jnp.zeros(2)
    cotangent = jax.random.normal(jax.random.key(2), (4, 2))
    layer = backward.rule_layer(backward.dense, jax.nn.relu, rule)
    _, vjp = jax.vjp(layer, x, w, b)
    dx, dw, _ = vjp(cotangent)
    z = x @ w + b
    operands = backward.backward_operands(cotangent, x, w, z, jax.nn.relu(z), (z > 0).astype(z.dtype))
    delta = expected(operands)
    np.testing.assert_allclose(dw, x.T @ delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, delta @ w.T, rtol=1e-5, atol=1e-6)


def test_backprop_is_one_equation_and_passes_the_check():
    candidate = search_space.from_spec(search_space.BACKPROP)
    assert search_space.readable_name(candidate) == "dact * g"
    assert search_space.check_candidate(candidate) is None


@pytest.mark.parametrize(
    "spec, reason",
    [
        ("rule:div.0.x.3.x", "non-finite"),  # g / (|dact| + eps): 1e6 g where the ReLU is off
        ("rule:sub.0.x.0.x", "constant"),  # g - g = 0
        ("rule:mul.3.x.6.x", "ignores g"),  # dact * noise
        ("rule:left.0.sign.0.x+sub.7.x.7.x", "constant"),  # two units: sign(g) - sign(g)
    ],
)
def test_invalid_equations_are_rejected_with_a_reason(spec, reason):
    message = search_space.check_candidate(search_space.from_spec(spec))
    assert message is not None and message.startswith(reason), message


def test_bad_specs_name_the_bad_part():
    with pytest.raises(UnknownNameError, match="unknown unary function 'cosh'"):
        search_space.from_spec("rule:mul.0.cosh.3.x")
    with pytest.raises(ValueError, match="valid inputs are 0 \\(g\\) to 6"):
        search_space.from_spec("rule:mul.0.x.9.x")
    with pytest.raises(ValueError, match="must start with 'rule:'"):
        search_space.from_spec("mul.0.x.3.x")


def test_mutations_keep_equations_valid():
    rng = np.random.default_rng(0)
    candidate = VOCABULARY.sample(rng)
    for _ in range(300):
        child = VOCABULARY.mutate(candidate, rng)
        assert child != candidate
        assert search_space.LANGUAGE.validate(child) == child
        assert search_space.from_spec(search_space.to_spec(child)) == child
        changed = (VOCABULARY.encode(child) != VOCABULARY.encode(candidate)).sum()
        assert changed == 1
        candidate = child


def test_evolution_reaches_the_optimum_of_a_toy_fitness():
    """Fitness = decisions shared with a target equation; aging evolution finds the target, random search with
    the same number of candidates does not."""
    rng = np.random.default_rng(1)
    target = VOCABULARY.encode(VOCABULARY.sample(rng))

    def evaluate(candidates):
        return [float((VOCABULARY.encode(c) == target).sum()) for c in candidates]

    history = evolution.regularized_evolution(
        VOCABULARY, evaluate, population_size=20, sample_size=5, num_candidates=2000, seed=0
    )
    best = max(history, key=lambda individual: individual.reward)
    assert best.reward == VOCABULARY.num_decisions
    assert np.array_equal(VOCABULARY.encode(best.candidate), target)
    baseline = evolution.random_search(VOCABULARY, evaluate, num_candidates=2000, seed=0)
    assert max(individual.reward for individual in baseline) < VOCABULARY.num_decisions


def test_names_are_canonical():
    a = search_space.from_spec("rule:mul.0.x.3.x")
    b = search_space.from_spec("rule:mul.3.x.0.x")
    assert a != b and search_space.readable_name(a) == search_space.readable_name(b)
    assert isinstance(a[0], expressions.CoreUnit)
