"""Candidate compilation and rejection on a toy language with two operands: each reason, and acceptance."""

import jax.numpy as jnp
import numpy as np
import pytest

from common.search import compiler
from tests.common.search import toy

POINTS = np.linspace(-2.0, 2.0, 9)  # includes 0
PROBE = compiler.Probe(points=(POINTS[:, None], POINTS[::-1, None] + 0.5), description="[-2, 2]")


def test_compiled_function_computes_the_candidate():
    fn = compiler.compile_function(toy.LANGUAGE, toy.LANGUAGE.from_spec("toy:mul.0.scale.1.id"))
    assert fn.__doc__ == "b * w * a"  # commutative operands sorted
    np.testing.assert_allclose(fn((jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 4.0])), jnp.asarray([[2.0]])), [6, 16])


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("toy:sub.0.id.0.id", "constant: f = 0 on the whole probe"),  # a - a
        ("toy:add.0.zero.1.zero", "constant: f = 0"),
        ("toy:mul.0.sqrt.1.id", "non-finite: f(-2, 2.5) = nan"),  # sqrt of a negative a
        ("toy:mul.0.square.0.square+mul.2.square.2.square", "non-finite: |f| reaches 6.55e+04 on [-2, 2]"),  # a^16
        ("toy:add.0.square.0.zero+mul.2.sqrt.1.id", "non-differentiable: df/da(0, 0.5) = nan"),  # sqrt(a^2) * b at 0
        ("toy:sub.0.scale.0.id", None),  # w a - a: constant only while w = 1, which is not where it starts
        ("toy:mul.0.id.1.id", None),
    ],
)
def test_rejections_name_their_reason(spec, reason):
    probe = compiler.Probe(PROBE.points, PROBE.description, max_magnitude=50.0)
    outcome = compiler.check(toy.LANGUAGE, toy.LANGUAGE.from_spec(spec), probe)
    if reason is None:
        assert outcome is None
    else:
        assert outcome is not None and outcome.startswith(reason), outcome


def test_shape_errors_are_rejections_not_crashes():
    matrices = np.random.default_rng(0).normal(size=(4, 2, 3))
    probe = compiler.Probe(points=(matrices, matrices + 1.0), description="2x3 matrices", output_shape=(2, 3))
    outcome = compiler.check(toy.LANGUAGE, toy.LANGUAGE.from_spec("toy:matmul.0.id.1.id"), probe)
    assert outcome is not None and outcome.startswith("shape error: "), outcome
    transposed_output = compiler.Probe(points=(matrices, matrices), description="2x3", output_shape=(3, 2))
    outcome = compiler.check(toy.LANGUAGE, toy.LANGUAGE.from_spec("toy:mul.0.id.1.id"), transposed_output)
    assert outcome == "shape error: output (2, 3), expected (3, 2)"
    assert compiler.check(toy.LANGUAGE, toy.LANGUAGE.from_spec("toy:mul.0.id.1.id"), probe) is None
    # a non-finite entry is located at its probe point when operands are not single numbers
    outcome = compiler.check(toy.LANGUAGE, toy.LANGUAGE.from_spec("toy:mul.0.sqrt.1.id"), probe)
    assert outcome is not None and outcome.startswith("non-finite: f(probe point 0) = nan"), outcome


def test_a_probe_for_the_wrong_number_of_operands_is_an_error():
    probe = compiler.Probe(points=(POINTS[:, None],), description="[-2, 2]")
    with pytest.raises(ValueError, match="points for 1 operands, the language has 2"):
        compiler.check(toy.LANGUAGE, toy.LANGUAGE.from_spec("toy:mul.0.id.1.id"), probe)
