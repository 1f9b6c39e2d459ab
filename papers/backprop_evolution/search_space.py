"""The search space of backprop evolution: equations for delta, the signal a layer's backward pass uses as dL/dz.

Backprop evolution's instance of the expression language (common/search/expressions.py). An equation is a list of
core units b(u1(i1), u2(i2)) over the backward-pass operands of common/search/backward.py (g, h, z, dact, x_rms,
w_rms, noise); its output delta [B, ..., N] gives the gradient passed to the layer below (delta W^T) and the
weight update (x^T delta), or one of the two (`model.apply_to`). Standard backprop is `g * dact`
(`rule:mul.0.x.3.x`).

Our choices (the paper's operand and function lists were not available): the unary functions are the bounded,
everywhere-finite half of the activation search's list plus sign, clipping and three normalisations (over the batch,
per example, and of the whole tensor, which make the batch statistics available); the binary functions are the
activation search's arithmetic ones, a safe division, and `left` (a unit that only transforms its first input).
No function has a trainable parameter.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from common.search import backward, compiler, expressions
from common.search.expressions import Binary, Unary

EPS = 1e-6  # in the normalisations and in x1 / (|x2| + eps)
SPEC_PREFIX = "rule:"
BACKPROP = "rule:mul.0.x.3.x"  # g * dact


def _batch_norm(v: jax.Array) -> jax.Array:
    """Zero mean, unit variance per unit over the batch (and spatial) axes: [B, ..., N] -> same."""
    axes = tuple(range(v.ndim - 1))
    centred = v - v.mean(axes, keepdims=True)
    return centred / jnp.sqrt(jnp.mean(jnp.square(centred), axes, keepdims=True) + EPS)


def _example_norm(v: jax.Array) -> jax.Array:
    """Unit root mean square per example: [B, ...] -> same."""
    axes = tuple(range(1, v.ndim))
    return v / jnp.sqrt(jnp.mean(jnp.square(v), axes, keepdims=True) + EPS)


def _tensor_norm(v: jax.Array) -> jax.Array:
    """Unit root mean square over the whole tensor: keeps the direction, drops the scale."""
    return v / jnp.sqrt(jnp.mean(jnp.square(v)) + EPS)


UNARY: dict[str, Unary] = {
    "x": Unary(lambda x, b: x, "{}"),
    "neg": Unary(lambda x, b: -x, "-({})"),
    "abs": Unary(lambda x, b: jnp.abs(x), "|{}|"),
    "square": Unary(lambda x, b: x**2, "({})^2"),
    "sign": Unary(lambda x, b: jnp.sign(x), "sign({})"),
    "signed_sqrt": Unary(lambda x, b: jnp.sign(x) * jnp.sqrt(jnp.abs(x)), "ssqrt({})"),
    "tanh": Unary(lambda x, b: jnp.tanh(x), "tanh({})"),
    "sigmoid": Unary(lambda x, b: jax.nn.sigmoid(x), "sigmoid({})"),
    "max0": Unary(lambda x, b: jnp.maximum(x, 0.0), "max({}, 0)"),
    "min0": Unary(lambda x, b: jnp.minimum(x, 0.0), "min({}, 0)"),
    "clip": Unary(lambda x, b: jnp.clip(x, -1.0, 1.0), "clip({}, -1, 1)"),
    "batch_norm": Unary(lambda x, b: _batch_norm(x), "bn({})"),
    "example_norm": Unary(lambda x, b: _example_norm(x), "exnorm({})"),
    "tensor_norm": Unary(lambda x, b: _tensor_norm(x), "tnorm({})"),
}

BINARY: dict[str, Binary] = {
    "add": Binary(lambda a, c, b: a + c, "({0} + {1})", commutative=True),
    "sub": Binary(lambda a, c, b: a - c, "({0} - {1})"),
    "mul": Binary(lambda a, c, b: a * c, "{0} * {1}", commutative=True),
    "div": Binary(lambda a, c, b: a / (jnp.abs(c) + EPS), "{0} / (|{1}| + eps)"),
    "max": Binary(lambda a, c, b: jnp.maximum(a, c), "max({0}, {1})", commutative=True),
    "min": Binary(lambda a, c, b: jnp.minimum(a, c), "min({0}, {1})", commutative=True),
    "left": Binary(lambda a, c, b: a, "{0}"),
}

LANGUAGE = expressions.Language(operands=backward.OPERANDS, unary=UNARY, binary=BINARY, spec_prefix=SPEC_PREFIX)

Candidate = expressions.Candidate
CoreUnit = expressions.CoreUnit
from_spec = LANGUAGE.from_spec
to_spec = LANGUAGE.to_spec
readable_name = LANGUAGE.readable_name


def vocabulary(binaries: Sequence[str], unaries: Sequence[str], num_units: int) -> expressions.Vocabulary:
    """What a search may build from the named functions (a config's search.binaries / search.unaries)."""
    return expressions.Vocabulary(LANGUAGE, tuple(binaries), tuple(unaries), int(num_units))


def backprop_candidate(num_units: int) -> Candidate:
    """Backprop, g * dact, as a candidate of `num_units` units: the later units pass it on (`left`)."""
    units = [CoreUnit("mul", 0, "x", 3, "x")]
    units += [CoreUnit("left", len(LANGUAGE.operands) + i, "x", 0, "x") for i in range(num_units - 1)]
    return LANGUAGE.validate(units)


def compile_rule(candidate: Sequence[CoreUnit]) -> backward.Rule:
    """The candidate as a backward rule: {operand name: [B, ..., N]} -> delta [B, ..., N]."""
    fn = compiler.compile_function(LANGUAGE, candidate)
    no_parameters = jnp.zeros((0, 1))

    def rule(operands):
        return fn([operands[name] for name in LANGUAGE.operands], no_parameters)

    rule.__doc__ = fn.__doc__
    return rule


def resolve_rule(spec: str) -> backward.Rule:
    """A config's `model.rule`: a candidate spec (`rule:...`) or "backprop"."""
    return backward.backprop if spec == "backprop" else compile_rule(from_spec(spec))


# ---------------------------------------------------------------------------------------------------------------
# Rejection before training.


def _probe_operands(num_points: int = 64, batch: int = 16, units: int = 8) -> tuple[np.ndarray, ...]:
    """Backward-pass operands as a ReLU layer of a trained-from-scratch MLP sees them, one [P, B, N] per operand.

    g is small (a cross-entropy gradient through a layer or two), z is unit normal, h and dact follow from z."""
    rng = np.random.default_rng(0)
    shape = (num_points, batch, units)
    z = rng.normal(size=shape)
    values = {
        "g": rng.normal(scale=1e-2, size=shape),
        "h": np.maximum(z, 0.0),
        "z": z,
        "dact": (z > 0).astype(np.float64),
        "x_rms": np.broadcast_to(rng.uniform(0.2, 2.0, size=(num_points, batch, 1)), shape),
        "w_rms": np.broadcast_to(rng.uniform(0.02, 0.2, size=(num_points, 1, units)), shape),
        "noise": rng.normal(size=shape),
    }
    return tuple(values[name].astype(np.float32) for name in LANGUAGE.operands)


PROBE = compiler.Probe(
    points=_probe_operands(),
    description="operands of a ReLU layer's backward pass",
    constant_tolerance=1e-7,
    max_magnitude=1e4,  # a delta this large (g is ~1e-2) blows the weights up in one step
    output_shape=(16, 8),
    check_gradients=False,  # a rule is evaluated, never differentiated
)


def check_candidate(candidate: Sequence[CoreUnit]) -> str | None:
    """None if the equation is worth training; otherwise why not: `non-finite`, `constant` (compiler.check), or
    `ignores g` (delta does not change when the incoming gradient does, so no loss signal reaches the weights)."""
    reason = compiler.check(LANGUAGE, candidate, PROBE)
    if reason is not None:
        return reason
    fn = compiler.compile_function(LANGUAGE, candidate)
    points = [jnp.asarray(p[0]) for p in PROBE.points]
    flipped = list(points)
    flipped[LANGUAGE.operands.index("g")] = -3.0 * points[LANGUAGE.operands.index("g")]
    no_parameters = jnp.zeros((0, 1))
    if np.allclose(fn(points, no_parameters), fn(flipped, no_parameters), rtol=0, atol=1e-9):
        return "ignores g: delta is the same for g and -3 g, so the loss cannot steer the weights"
    return None
