"""Candidates as JAX functions, and their rejection before any training is spent on them.

`compile_function` turns a candidate of a language into `fn(operands, parameters)`; `check` looks at it on a
`Probe` and returns why it is not worth training (shape error, non-finite, constant, non-differentiable), or None.
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from common.search import expressions

CompiledFunction = Callable[[Sequence[jax.Array], jax.Array], jax.Array]


def compile_function(language: expressions.Language, candidate: Sequence[expressions.CoreUnit]) -> CompiledFunction:
    """fn(operands, parameters [num_parameters, ...]) -> the candidate's output; validated once, here."""
    candidate = language.validate(candidate)

    def fn(operands: Sequence[jax.Array], parameters: jax.Array) -> jax.Array:
        return language.evaluate(candidate, operands, parameters)

    fn.__doc__ = language.readable_name(candidate)
    return fn


@dataclasses.dataclass(frozen=True)
class Probe:
    """Where a candidate is looked at: `points` holds one array [P, ...] per operand (point p of every operand
    is evaluated together); `description` names the region in messages (e.g. `[-6, 6]`).

    The parameters sit at their initial values, where training starts, as [num_parameters, 1]; "constant" also
    needs them moved by `parameter_move` (x - beta x is 0 only at beta = 1)."""

    points: tuple[np.ndarray, ...]
    description: str
    constant_tolerance: float = 1e-5
    parameter_move: float = 0.37
    max_magnitude: float = 1e6  # larger values overflow a float32 network within a layer or two
    output_shape: tuple[int, ...] | None = None  # of one point's output; None: any shape
    check_gradients: bool = True  # False for candidates that are never differentiated (backward-pass rules)

    def __post_init__(self):
        sizes = {len(points) for points in self.points}
        if len(sizes) != 1:
            raise ValueError(f"every operand needs the same number of probe points, got {sorted(sizes)}")


def check(language: expressions.Language, candidate: Sequence[expressions.CoreUnit], probe: Probe) -> str | None:
    """None if the candidate is worth training; otherwise why not, starting with `shape error`, `non-finite`,
    `constant` or `non-differentiable`."""
    candidate = language.validate(candidate)
    if len(probe.points) != len(language.operands):
        raise ValueError(
            f"the probe has points for {len(probe.points)} operands, the language has {len(language.operands)}"
        )
    fn = compile_function(language, candidate)
    parameters = jnp.asarray(language.parameter_inits(candidate), jnp.float32).reshape(-1, 1)
    points = tuple(jnp.asarray(p, jnp.float32) for p in probe.points)
    try:
        values, grads = _values_and_grads(fn, points, parameters)
        moved_values, _ = _values_and_grads(fn, points, parameters + probe.parameter_move)
    except (TypeError, ValueError) as error:  # what JAX raises for operands that do not broadcast
        return f"shape error: {str(error).splitlines()[0]}"
    values, moved_values = np.asarray(values), np.asarray(moved_values)
    if probe.output_shape is not None and values.shape[1:] != tuple(probe.output_shape):
        return f"shape error: output {values.shape[1:]}, expected {tuple(probe.output_shape)}"
    if not np.all(np.isfinite(values)):
        point = _first_bad_point(values)
        bad = values[point][~np.isfinite(values[point])][0]
        return f"non-finite: f({_describe(probe, point)}) = {bad}"
    if np.max(np.abs(values)) > probe.max_magnitude:
        return f"non-finite: |f| reaches {np.max(np.abs(values)):.3g} on {probe.description}"
    if _is_constant(values, probe.constant_tolerance) and _is_constant(moved_values, probe.constant_tolerance):
        return f"constant: f = {values.ravel()[0]:.4g} on the whole probe"
    gradients = zip(language.operands, grads, strict=True) if probe.check_gradients else ()
    for name, grad in gradients:
        grad = np.asarray(grad)
        if not np.all(np.isfinite(grad)):
            point = _first_bad_point(grad)
            derivative = "f'" if len(language.operands) == 1 else f"df/d{name}"
            bad = grad[point][~np.isfinite(grad[point])][0]
            return f"non-differentiable: {derivative}({_describe(probe, point)}) = {bad}"
    return None


def _values_and_grads(fn: CompiledFunction, points: tuple[jax.Array, ...], parameters: jax.Array):
    """Per probe point: fn's output [P, ...] and the gradient of its sum with respect to every operand."""

    def at_point(*point):
        output = fn(point, parameters)
        return output.sum(), output

    value_and_grad = jax.value_and_grad(at_point, argnums=tuple(range(len(points))), has_aux=True)
    (_, values), grads = jax.vmap(value_and_grad)(*points)
    return values, grads


def _is_constant(values: np.ndarray, tolerance: float) -> bool:
    """True if no output element moves by `tolerance` across the probe points; NaN counts as moving."""
    return not np.max(np.ptp(values, axis=0)) >= tolerance


def _first_bad_point(values: np.ndarray) -> int:
    """The index of the first probe point with a non-finite element."""
    return int(np.argmax(~np.isfinite(values.reshape(len(values), -1)).all(axis=1)))


def _describe(probe: Probe, point: int) -> str:
    """The operands' values at probe point `point` when each is one number, else the point's index."""
    values = [np.asarray(points[point]) for points in probe.points]
    if all(v.size == 1 for v in values):
        return ", ".join(f"{float(v.ravel()[0]):.3g}" for v in values)
    return f"probe point {point}"
