"""A toy language for the library tests: two operands (a, b), a few unary and binary functions, one parameter."""

import jax.numpy as jnp

from common.search import expressions
from common.search.expressions import Binary, Unary

UNARY = {
    "id": Unary(lambda x, p: x, "{}"),
    "neg": Unary(lambda x, p: -x, "-({})"),
    "square": Unary(lambda x, p: x**2, "({})^2"),
    "sqrt": Unary(lambda x, p: jnp.sqrt(x), "sqrt({})"),
    "scale": Unary(lambda x, p: p * x, "w * {}", uses_parameter=True, parameter_init=2.0),
    "zero": Unary(lambda x, p: jnp.zeros_like(x), "0"),
}
BINARY = {
    "add": Binary(lambda x, y, p: x + y, "({0} + {1})", commutative=True),
    "sub": Binary(lambda x, y, p: x - y, "({0} - {1})"),
    "mul": Binary(lambda x, y, p: x * y, "{0} * {1}", commutative=True),
    "matmul": Binary(lambda x, y, p: x @ y, "{0} @ {1}"),
}
LANGUAGE = expressions.Language(operands=("a", "b"), unary=UNARY, binary=BINARY, spec_prefix="toy:")


def vocabulary(num_units: int, binaries=("add", "sub", "mul"), unaries=("id", "neg", "square", "scale")):
    return expressions.Vocabulary(LANGUAGE, tuple(binaries), tuple(unaries), num_units)
