"""The expression language on a toy instance: names, specs, validation, enumeration, sampling and mutation."""

import jax.numpy as jnp
import numpy as np
import pytest

from common.search import expressions
from common.search.expressions import CoreUnit
from tests.common.search import toy


def test_names_sort_commutative_operands_and_follow_the_operands_and_units():
    language = toy.LANGUAGE
    a_plus_b = language.from_spec("toy:add.1.id.0.id")
    assert language.readable_name(a_plus_b) == "a + b"
    assert language.readable_name(language.from_spec("toy:add.0.id.1.id")) == "a + b"
    assert language.readable_name(language.from_spec("toy:sub.1.id.0.id")) == "b - a"
    two_units = language.from_spec("toy:add.0.square.1.neg+mul.2.id.0.scale")
    assert language.readable_name(two_units) == "(-b + a^2) * w * a"
    assert language.to_spec(two_units) == "toy:add.0.square.1.neg+mul.2.id.0.scale"


def test_evaluate_matches_the_formula_and_fills_parameter_slots_in_order():
    language = toy.LANGUAGE
    candidate = language.from_spec("toy:add.0.scale.1.id+mul.2.scale.1.id")  # w2 (w1 a + b) * b
    assert language.parameter_inits(candidate) == [2.0, 2.0]
    a, b = jnp.asarray([1.0, -2.0]), jnp.asarray([0.5, 3.0])
    out = language.evaluate(candidate, (a, b), jnp.asarray([[3.0], [5.0]]))
    np.testing.assert_allclose(out, 5.0 * (3.0 * a + b) * b)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("toy:plus.0.id.0.id", "unknown binary function 'plus'; valid choices: add, matmul, mul, sub"),
        ("toy:add.0.id.0.cube", "unknown unary function 'cube'; valid choices: id, neg,"),
        ("toy:add.2.id.0.id", "core unit 1 reads input 2; valid inputs are 0 (a) to 1 (operands a, b,"),
        ("toy:add.0.id.0", "is not <binary>.<input1>.<unary1>.<input2>.<unary2>"),
        ("search:add.0.id.0.id", "must start with 'toy:'"),
    ],
)
def test_bad_specs_fail_naming_the_bad_value(spec, message):
    with pytest.raises(ValueError) as error:
        toy.LANGUAGE.from_spec(spec)
    assert message in str(error.value)


def test_one_unit_enumeration_is_ordered_and_distinct():
    vocabulary = toy.vocabulary(1, binaries=("add", "sub"), unaries=("id", "neg"))
    names = [toy.LANGUAGE.readable_name(c) for c in vocabulary.one_unit_candidates()]
    assert len(names) == len(set(names))
    # add over 4 operand-unary choices per side: 4 * 5 / 2 = 10 unordered pairs; sub: all 16 ordered pairs
    assert len(names) == 10 + 16
    assert names[:3] == ["a + a", "-a + a", "a + b"]


def test_samples_are_valid_reproducible_and_cover_every_input():
    vocabulary = toy.vocabulary(3)
    assert vocabulary.sample(np.random.default_rng(0)) == vocabulary.sample(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    samples = [vocabulary.sample(rng) for _ in range(200)]
    inputs_of_unit_3 = {slot for c in samples for slot in (c[2].input1, c[2].input2)}
    assert inputs_of_unit_3 == {0, 1, 2, 3}  # two operands and two earlier units, none beyond
    for candidate in samples:
        assert toy.LANGUAGE.validate(candidate) == candidate
        np.testing.assert_array_equal(vocabulary.decode(vocabulary.encode(candidate)), candidate)


def test_mutation_changes_exactly_one_decision_to_a_valid_one():
    vocabulary = toy.vocabulary(2)
    rng = np.random.default_rng(0)
    changed_kinds = set()
    for _ in range(300):
        parent = vocabulary.sample(rng)
        child = vocabulary.mutate(parent, rng)
        assert toy.LANGUAGE.validate(child) == child
        difference = np.flatnonzero(vocabulary.encode(child) != vocabulary.encode(parent))
        assert len(difference) == 1
        changed_kinds.add(("binary", "input", "input", "unary", "unary")[difference[0] % 5])
    assert changed_kinds == {"binary", "input", "unary"}


def test_mutation_skips_decisions_without_another_choice():
    vocabulary = toy.vocabulary(1, binaries=("add",), unaries=("id",))
    parent = (CoreUnit("add", 0, "id", 0, "id"),)
    rng = np.random.default_rng(0)
    children = {vocabulary.mutate(parent, rng) for _ in range(50)}
    assert children == {(CoreUnit("add", 1, "id", 0, "id"),), (CoreUnit("add", 0, "id", 1, "id"),)}
    single_operand = expressions.Language(("x",), toy.UNARY, toy.BINARY, "one:")
    with pytest.raises(ValueError, match="nothing to mutate"):
        expressions.Vocabulary(single_operand, ("add",), ("id",), 1).mutate((CoreUnit("add", 0, "id", 0, "id"),), rng)


def test_vocabulary_rejects_unknown_functions_and_empty_subsets():
    with pytest.raises(ValueError, match="unknown unary function 'cube'"):
        toy.vocabulary(1, unaries=("id", "cube"))
    with pytest.raises(ValueError, match="need at least one binary"):
        toy.vocabulary(0)
