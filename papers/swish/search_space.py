"""The activation search space of "Searching for activation functions": core units b(u1(x1), u2(x2)).

A candidate is a sequence of core units. Unit i combines two inputs, each passed through a unary function, with a
binary function; an input is 0 (the pre-activation x) or j >= 1 (the output of unit j, j <= i). The candidate's
output is its last unit's output. Every unary or binary function that uses beta gets its own trainable beta per
channel, so `x * sigmoid(beta * x)` learns one beta per channel of the layer it sits in.

Each candidate has two string forms:
  spec  `search:<binary>.<input1>.<unary1>.<input2>.<unary2>[+<next unit>...]`, e.g.
        `search:sigmoid_mul.0.beta_mul.0.x` (path- and config-safe; what `--config.model.activation` takes)
  name  the readable formula, e.g. `sigmoid(beta * x) * x`, with the operands of commutative binaries sorted so
        that equal functions get equal names (the search's cache key).
`compile_candidate` turns one into an nnx.Module activation; `check_candidate` rejects, with a reason, candidates
that are constant, non-finite or non-differentiable on a probe, before any training is spent on them.
"""

import dataclasses
import math
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.registry import lookup

EPS = 1e-3  # in log(|x| + eps) and x1 / (x2 + eps); the paper names eps without a value
SPEC_PREFIX = "search:"


@dataclasses.dataclass(frozen=True)
class Unary:
    """u(x, beta); `template` renders the readable form with `{}` for the operand."""

    fn: Callable[[jax.Array, jax.Array], jax.Array]
    template: str
    uses_beta: bool = False
    beta_init: float = 1.0


@dataclasses.dataclass(frozen=True)
class Binary:
    """b(x1, x2, beta); `template` renders with `{0}`, `{1}`; commutative ones sort their operands in names."""

    fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    template: str
    uses_beta: bool = False
    commutative: bool = False
    beta_init: float = 1.0


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
    "beta_mul": Unary(lambda x, b: b * x, "beta * {}", uses_beta=True),
    "beta_add": Unary(lambda x, b: x + b, "({} + beta)", uses_beta=True),
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
    "beta": Unary(lambda x, b: jnp.broadcast_to(b, x.shape), "beta", uses_beta=True),
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
    "gauss_diff": Binary(lambda a, c, b: jnp.exp(-b * (a - c) ** 2), "exp(-beta * ({0} - {1})^2)", uses_beta=True),
    "laplace_diff": Binary(lambda a, c, b: jnp.exp(-b * jnp.abs(a - c)), "exp(-beta * |{0} - {1}|)", uses_beta=True),
    "mix": Binary(
        lambda a, c, b: b * a + (1.0 - b) * c, "(beta * {0} + (1 - beta) * {1})", uses_beta=True, beta_init=0.5
    ),
}


@dataclasses.dataclass(frozen=True)
class CoreUnit:
    """binary(unary1(input1), unary2(input2)); inputs: 0 = x, j >= 1 = output of core unit j."""

    binary: str
    input1: int
    unary1: str
    input2: int
    unary2: str


Candidate = tuple[CoreUnit, ...]


def validate(candidate: Sequence[CoreUnit]) -> Candidate:
    """Checks the names and the inputs (x or an earlier unit's output); raises naming the bad value."""
    candidate = tuple(candidate)
    if not candidate:
        raise ValueError("a candidate needs at least one core unit")
    for index, unit in enumerate(candidate):
        lookup(BINARY, unit.binary, "binary function")
        lookup(UNARY, unit.unary1, "unary function")
        lookup(UNARY, unit.unary2, "unary function")
        for slot in (unit.input1, unit.input2):
            if not 0 <= slot <= index:
                raise ValueError(
                    f"core unit {index + 1} reads input {slot}; valid inputs are 0 (x) to {index} "
                    "(outputs of earlier core units)"
                )
    return candidate


def to_spec(candidate: Sequence[CoreUnit]) -> str:
    units = [f"{u.binary}.{u.input1}.{u.unary1}.{u.input2}.{u.unary2}" for u in validate(candidate)]
    return SPEC_PREFIX + "+".join(units)


def is_spec(text: str) -> bool:
    return isinstance(text, str) and text.startswith(SPEC_PREFIX)


def from_spec(spec: str) -> Candidate:
    """Parses `search:<binary>.<in1>.<unary1>.<in2>.<unary2>[+...]`; errors name the bad part."""
    if not is_spec(spec):
        raise ValueError(f"candidate spec {spec!r} must start with {SPEC_PREFIX!r}")
    units = []
    for part in spec[len(SPEC_PREFIX) :].split("+"):
        fields = part.split(".")
        if len(fields) != 5 or not fields[1].isdigit() or not fields[3].isdigit():
            raise ValueError(
                f"core unit {part!r} of {spec!r} is not <binary>.<input1>.<unary1>.<input2>.<unary2> "
                "with integer inputs"
            )
        units.append(CoreUnit(fields[0], int(fields[1]), fields[2], int(fields[3]), fields[4]))
    return validate(units)


def readable_name(candidate: Sequence[CoreUnit]) -> str:
    """The formula in x and beta, e.g. `sigmoid(beta * x) * x`; equal for operand swaps of commutative binaries."""
    outputs = ["x"]
    for unit in validate(candidate):
        binary = BINARY[unit.binary]
        operands = [
            _apply_template(UNARY[unit.unary1].template, outputs[unit.input1]),
            _apply_template(UNARY[unit.unary2].template, outputs[unit.input2]),
        ]
        if binary.commutative:
            operands.sort()
        outputs.append(binary.template.format(*operands))
    name = outputs[-1]
    return name[1:-1] if _wrapped_in_one_pair(name) else name


def _apply_template(template: str, operand: str) -> str:
    """Fills a unary's template, dropping its parentheses around an operand that needs none (`x^2`, not `(x)^2`)."""
    if _wrapped_in_one_pair(operand) or " " not in operand:
        template = re.sub(r"(?<![a-z])\(\{\}\)", "{}", template)  # `({})^2` -> `{}^2`; `sin({})` stays
    return template.format(operand)


def _wrapped_in_one_pair(text: str) -> bool:
    """True for `(a + b)`, false for `(a) * (b)`: the outer parentheses enclose the whole text."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and index < len(text) - 1:
            return False
    return True


def beta_inits(candidate: Sequence[CoreUnit]) -> list[float]:
    """One initial value per beta slot, in evaluation order (unary1, unary2, binary of each unit)."""
    inits = []
    for unit in candidate:
        for function in (UNARY[unit.unary1], UNARY[unit.unary2], BINARY[unit.binary]):
            if function.uses_beta:
                inits.append(function.beta_init)
    return inits


def evaluate(candidate: Sequence[CoreUnit], x: jax.Array, betas: jax.Array) -> jax.Array:
    """The candidate at x: [..., C] with betas: [num_betas, C] (or [num_betas, 1]); elementwise, same shape as x."""
    outputs = [x]
    slot = 0

    def next_beta():
        nonlocal slot
        slot += 1
        return betas[slot - 1].astype(x.dtype)

    for unit in candidate:
        values = []
        for source, unary_name in ((unit.input1, unit.unary1), (unit.input2, unit.unary2)):
            unary = UNARY[unary_name]
            values.append(unary.fn(outputs[source], next_beta() if unary.uses_beta else None))
        binary = BINARY[unit.binary]
        outputs.append(binary.fn(*values, next_beta() if binary.uses_beta else None))
    return outputs[-1]


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

PROBE = np.concatenate([np.linspace(-6.0, 6.0, 241), np.random.default_rng(0).normal(0.0, 2.0, 256)])
CONSTANT_TOLERANCE = 1e-5
BETA_MOVE = 0.37  # how far the betas move for the second look of the constancy check
MAX_MAGNITUDE = 1e6  # a function this large on [-6, 6] overflows a float32 network within a layer or two


def check_candidate(candidate: Sequence[CoreUnit]) -> str | None:
    """None if the candidate is worth training; otherwise why not (constant, non-finite, non-differentiable).

    Probed on points of [-6, 6] (where BatchNorm'd pre-activations live) with the betas at their initial values,
    where training starts; "constant" also needs the betas moved off them (x - beta x is 0 only at beta = 1).
    """
    candidate = validate(candidate)
    betas = jnp.asarray(beta_inits(candidate), jnp.float32).reshape(-1, 1)
    probe = jnp.asarray(PROBE, jnp.float32)
    values, grads = _values_and_grads(candidate, probe, betas)
    values, grads = np.asarray(values), np.asarray(grads)
    moved_values, _ = _values_and_grads(candidate, probe, betas + BETA_MOVE)
    moved_values = np.asarray(moved_values)
    if not np.all(np.isfinite(values)):
        bad = PROBE[~np.isfinite(values)][0]
        return f"non-finite: f({bad:.3g}) = {values[~np.isfinite(values)][0]}"
    if np.max(np.abs(values)) > MAX_MAGNITUDE:
        return f"non-finite: |f| reaches {np.max(np.abs(values)):.3g} on [-6, 6]"
    if np.ptp(values) < CONSTANT_TOLERANCE and not np.ptp(moved_values) >= CONSTANT_TOLERANCE:
        return f"constant: f = {values[0]:.4g} on the whole probe"
    if not np.all(np.isfinite(grads)):
        bad = PROBE[~np.isfinite(grads)][0]
        return f"non-differentiable: f'({bad:.3g}) = {grads[~np.isfinite(grads)][0]}"
    return None


def _values_and_grads(candidate: Candidate, probe: jax.Array, betas: jax.Array):
    """f and df/dx at every probe point; probe: [P], betas: [num_betas, 1]."""

    def scalar(point):
        return evaluate(candidate, point.reshape(1), betas)[0]

    return jax.vmap(jax.value_and_grad(scalar))(probe)
