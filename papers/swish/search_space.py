"""The activation search space of "Searching for activation functions": core units b(u1(x1), u2(x2)).

Swish's instance of the expression language in common/search/expressions.py: one operand, x, and the paper's 25
unary and 10 binary functions. Every function that uses beta gets its own trainable beta per channel, so
`x * sigmoid(beta * x)` learns one beta per channel of the layer it sits in.

Each candidate has two string forms:
  spec  `search:<binary>.<input1>.<unary1>.<input2>.<unary2>[+<next unit>...]`, e.g.
        `search:sigmoid_mul.0.beta_mul.0.x` (path- and config-safe; what `--config.model.activation` takes)
  name  the readable formula, e.g. `sigmoid(beta * x) * x`, with the operands of commutative binaries sorted so
        that equal functions get equal names (the search's cache key).
`compile_candidate` turns one into an nnx.Module activation; `check_candidate` rejects, with a reason, candidates
that are constant, non-finite or non-differentiable on a probe, before any training is spent on them.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.search import compiler, expressions
from common.search.expressions import Binary, Unary

EPS = 1e-3  # in log(|x| + eps) and x1 / (x2 + eps); the paper names eps without a value
SPEC_PREFIX = "search:"


def _sinc(x: jax.Array) -> jax.Array:
    """sin(x) / x with its limit 1 at 0 (jnp.sinc is the normalised sin(pi x) / (pi x))."""
    return jnp.sinc(x / math.pi)


# The paper's 25 unary functions.
UNARY: dict[str, Unary] = {
    "x": Unary(lambda x, b: x, "{}"),
    "neg": Unary(lambda x, b: -x, "-({})"),
    "abs": Unary(lambda x, b: jnp.abs(x), "|{}|"),
    "square": Unary(lambda x, b: x**2, "({})^2"),
    "cube": Unary(lambda x, b: x**3, "({})^3"),
    "sqrt": Unary(lambda x, b: jnp.sqrt(x), "sqrt({})"),
    "beta_mul": Unary(lambda x, b: b * x, "beta * {}", uses_parameter=True),
    "beta_add": Unary(lambda x, b: x + b, "({} + beta)", uses_parameter=True),
    "log_abs": Unary(lambda x, b: jnp.log(jnp.abs(x) + EPS), "log(|{}| + eps)"),
    "exp": Unary(lambda x, b: jnp.exp(x), "exp({})"),
    "sin": Unary(lambda x, b: jnp.sin(x), "sin({})"),
    "cos": Unary(lambda x, b: jnp.cos(x), "cos({})"),
    "sinh": Unary(lambda x, b: jnp.sinh(x), "sinh({})"),
    "cosh": Unary(lambda x, b: jnp.cosh(x), "cosh({})"),
    "tanh": Unary(lambda x, b: jnp.tanh(x), "tanh({})"),
    "asinh": Unary(lambda x, b: jnp.arcsinh(x), "asinh({})"),
    "atan": Unary(lambda x, b: jnp.arctan(x), "atan({})"),
    "sinc": Unary(lambda x, b: _sinc(x), "sinc({})"),
    "max0": Unary(lambda x, b: jnp.maximum(x, 0.0), "max({}, 0)"),
    "min0": Unary(lambda x, b: jnp.minimum(x, 0.0), "min({}, 0)"),
    "sigmoid": Unary(lambda x, b: jax.nn.sigmoid(x), "sigmoid({})"),
    "softplus": Unary(lambda x, b: jax.nn.softplus(x), "log(1 + exp({}))"),
    "gauss": Unary(lambda x, b: jnp.exp(-(x**2)), "exp(-({})^2)"),
    "erf": Unary(lambda x, b: jax.scipy.special.erf(x), "erf({})"),
    "beta": Unary(lambda x, b: jnp.broadcast_to(b, x.shape), "beta", uses_parameter=True),
}

# The paper's 10 binary functions.
BINARY: dict[str, Binary] = {
    "add": Binary(lambda a, c, b: a + c, "({0} + {1})", commutative=True),
    "mul": Binary(lambda a, c, b: a * c, "{0} * {1}", commutative=True),
    "sub": Binary(lambda a, c, b: a - c, "({0} - {1})"),
    "div": Binary(lambda a, c, b: a / (c + EPS), "{0} / ({1} + eps)"),
    "max": Binary(lambda a, c, b: jnp.maximum(a, c), "max({0}, {1})", commutative=True),
    "min": Binary(lambda a, c, b: jnp.minimum(a, c), "min({0}, {1})", commutative=True),
    "sigmoid_mul": Binary(lambda a, c, b: jax.nn.sigmoid(a) * c, "sigmoid({0}) * {1}"),
    "gauss_diff": Binary(lambda a, c, b: jnp.exp(-b * (a - c) ** 2), "exp(-beta * ({0} - {1})^2)", uses_parameter=True),
    "laplace_diff": Binary(
        lambda a, c, b: jnp.exp(-b * jnp.abs(a - c)), "exp(-beta * |{0} - {1}|)", uses_parameter=True
    ),
    "mix": Binary(
        lambda a, c, b: b * a + (1.0 - b) * c,
        "(beta * {0} + (1 - beta) * {1})",
        uses_parameter=True,
        parameter_init=0.5,
    ),
}


LANGUAGE = expressions.Language(operands=("x",), unary=UNARY, binary=BINARY, spec_prefix=SPEC_PREFIX)

CoreUnit = expressions.CoreUnit
Candidate = expressions.Candidate
validate = LANGUAGE.validate
to_spec = LANGUAGE.to_spec
is_spec = LANGUAGE.is_spec
from_spec = LANGUAGE.from_spec
readable_name = LANGUAGE.readable_name
beta_inits = LANGUAGE.parameter_inits  # one initial value per beta slot, in evaluation order


def evaluate(candidate: Sequence[CoreUnit], x: jax.Array, betas: jax.Array) -> jax.Array:
    """The candidate at x: [..., C] with betas: [num_betas, C] (or [num_betas, 1]); elementwise, same shape as x."""
    return LANGUAGE.evaluate(candidate, (x,), betas)


def vocabulary(binaries: Sequence[str], unaries: Sequence[str], num_units: int) -> expressions.Vocabulary:
    """What a search may build from the named functions (e.g. a config's search.binaries / search.unaries)."""
    return expressions.Vocabulary(LANGUAGE, tuple(binaries), tuple(unaries), int(num_units))


class CandidateActivation(nnx.Module):
    """A searched activation as a ResNet activation: `num_features` channels on the last axis, own betas."""

    def __init__(self, candidate: Sequence[CoreUnit], num_features: int, *, rngs: nnx.Rngs):
        del rngs  # betas start at fixed values, like Swish's
        self.candidate = validate(candidate)
        inits = beta_inits(self.candidate)
        # No parameter at all for a beta-free candidate: a zero-size array cannot be checkpointed.
        self.beta = nnx.Param(jnp.tile(jnp.asarray(inits, jnp.float32)[:, None], (1, num_features))) if inits else None

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., num_features] -> same shape."""
        return evaluate(self.candidate, x, jnp.zeros((0, 1)) if self.beta is None else self.beta.value)


def compile_candidate(candidate: Sequence[CoreUnit]):
    """An activation factory (`factory(num_features, rngs=...)`) for the ResNet's `activation` argument."""
    candidate = validate(candidate)

    def factory(num_features: int, *, rngs: nnx.Rngs) -> nnx.Module:
        return CandidateActivation(candidate, num_features, rngs=rngs)

    factory.__doc__ = readable_name(candidate)
    return factory


def resolve_activation(name: str):
    """A config's `model.activation`: a candidate spec becomes its factory; any other name passes through."""
    return compile_candidate(from_spec(name)) if is_spec(name) else name


# ---------------------------------------------------------------------------------------------------------------
# Rejection before training.

PROBE = compiler.Probe(
    points=(np.concatenate([np.linspace(-6.0, 6.0, 241), np.random.default_rng(0).normal(0.0, 2.0, 256)])[:, None],),
    description="[-6, 6]",  # where BatchNorm'd pre-activations live
    constant_tolerance=1e-5,
    parameter_move=0.37,  # how far the betas move for the second look of the constancy check
    max_magnitude=1e6,  # a function this large on [-6, 6] overflows a float32 network within a layer or two
)


def check_candidate(candidate: Sequence[CoreUnit]) -> str | None:
    """None if the candidate is worth training; otherwise why not (constant, non-finite, non-differentiable).

    Probed on points of [-6, 6] with the betas at their initial values, where training starts; "constant" also
    needs the betas moved off them (x - beta x is 0 only at beta = 1).
    """
    return compiler.check(LANGUAGE, candidate, PROBE)
