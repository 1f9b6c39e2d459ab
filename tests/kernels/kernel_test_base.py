"""The check every kernel package's tests share: its Pallas function, interpreted, against its pure-jnp reference
over shapes x dtypes, in values and (where the kernel has a VJP) gradients, on fresh random inputs per case.

A kernel's test module describes itself once as a `KernelUnderTest` (reference, Pallas function, input generator,
tolerances per dtype) and parametrises one test over `cases(...)`; each case draws its inputs and cotangent from
its own seed. `compare` is the same check between any two functions (a reference against a test's own oracle).
"""

import dataclasses
import functools
import inspect
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.base import KernelConfig

Tolerance = tuple[float, float]  # (atol, rtol) of np.testing.assert_allclose


@dataclasses.dataclass(frozen=True)
class Case:
    """One parametrised case: the sizes the input generator reads, the dtype, and the Pallas launch config
    (None: the interpreter's default)."""

    sizes: tuple
    dtype: Any = jnp.float32
    config: KernelConfig | None = None

    @property
    def name(self) -> str:
        sizes = "x".join(str(size).replace(" ", "") for size in self.sizes)
        tiles = "" if self.config is None else f"-tile{self.config.min_tile}"
        return f"{sizes}-{jnp.dtype(self.dtype).name}{tiles}"

    @property
    def seed(self) -> int:
        """Differs between cases and is the same on every run, so a failure reproduces."""
        return zlib.crc32(self.name.encode())


def cases(sizes: Sequence[tuple], dtypes: Sequence = (jnp.float32,), config: KernelConfig | None = None) -> list:
    """Every sizes x dtypes pair as a pytest parameter named after its case."""
    return [pytest.param(Case(s, dtype, config), id=Case(s, dtype, config).name) for s in sizes for dtype in dtypes]


@dataclasses.dataclass(frozen=True)
class Compared:
    """What `compare` ran: the inputs and both outputs, for checks a kernel adds (a cache's untouched rows)."""

    inputs: tuple
    actual: Any
    expected: Any


def value_and_grads(fn: Callable, inputs: tuple, cotangent) -> tuple:
    """fn(*inputs) and the gradients of <fn(*inputs), cotangent> wrt every input, in one jitted call."""

    @jax.jit
    def run(*inputs):
        out, vjp = jax.vjp(fn, *inputs)
        return out, vjp(cotangent)

    return run(*inputs)


def random_cotangent(fn: Callable, inputs: tuple, seed: int):
    """A standard normal array like each output of fn(*inputs) (drawn in float32, cast to the output's dtype)."""
    outputs = jax.eval_shape(fn, *inputs)
    leaves, tree = jax.tree_util.tree_flatten(outputs)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    draws = [
        jax.random.normal(key, leaf.shape, jnp.float32).astype(leaf.dtype)
        for key, leaf in zip(keys, leaves, strict=True)
    ]
    return jax.tree_util.tree_unflatten(tree, draws)


def assert_close(actual, expected, tolerance: Tolerance, what: str) -> None:
    """Every array of `actual` matches `expected` in shape, dtype and values within (atol, rtol)."""
    atol, rtol = tolerance
    actual_leaves, actual_tree = jax.tree_util.tree_flatten(actual)
    expected_leaves, expected_tree = jax.tree_util.tree_flatten(expected)
    assert actual_tree == expected_tree, f"{what}: structure {actual_tree} != {expected_tree}"
    for a, e in zip(actual_leaves, expected_leaves, strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype, f"{what}: {a.shape} {a.dtype} != {e.shape} {e.dtype}"
        a, e = np.asarray(a, np.float32), np.asarray(e, np.float32)
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=what)


def compare(
    actual_fn: Callable, expected_fn: Callable, inputs: tuple, tolerance: Tolerance, *, seed: int, gradients=True
) -> Compared:
    """Asserts actual_fn(*inputs) matches expected_fn(*inputs) and, with gradients, so do their VJPs of one random
    cotangent wrt every input; each expected gradient must be nonzero somewhere, so the check can fail."""
    if not gradients:
        actual, expected = jax.jit(actual_fn)(*inputs), jax.jit(expected_fn)(*inputs)
        assert_close(actual, expected, tolerance, "output")
        return Compared(inputs, actual, expected)
    cotangent = random_cotangent(expected_fn, inputs, seed)
    actual, actual_grads = value_and_grads(actual_fn, inputs, cotangent)
    expected, expected_grads = value_and_grads(expected_fn, inputs, cotangent)
    assert_close(actual, expected, tolerance, "output")
    names = list(inspect.signature(expected_fn).parameters)[: len(inputs)]
    for name, grad, expected_grad in zip(names, actual_grads, expected_grads, strict=True):
        assert np.any(np.asarray(expected_grad) != 0), f"d{name} of the expected function is all zeros"
        assert_close(grad, expected_grad, tolerance, f"d{name}")
    for name, grad, x in zip(names, actual_grads, inputs, strict=True):
        assert grad.shape == x.shape and grad.dtype == x.dtype, f"d{name}: {grad.shape} {grad.dtype} vs input"
    return Compared(inputs, actual, expected)


@dataclasses.dataclass(frozen=True)
class KernelUnderTest:
    """One kernel package, as the shared check sees it.

    reference, pallas: the package's two functions, called as fn(*inputs, **static(sizes)); pallas also gets
    interpret=True and the case's config. make_inputs(key, sizes, dtype) -> the positional inputs.
    tolerance: (atol, rtol) per dtype name ("float32"). differentiable: False for a kernel without a VJP (values only).
    """

    reference: Callable
    pallas: Callable
    make_inputs: Callable[[jax.Array, tuple, Any], tuple]
    static: Callable[[tuple], dict]
    tolerance: Mapping[str, Tolerance]
    differentiable: bool = True

    def inputs(self, case: Case) -> tuple:
        return self.make_inputs(jax.random.PRNGKey(case.seed), case.sizes, case.dtype)

    def check_pallas_against_reference(self, case: Case) -> Compared:
        """The interpreted Pallas function against the reference on this case's fresh inputs."""
        static = self.static(case.sizes)
        pallas = functools.partial(self.pallas, **static, interpret=True, config=case.config)
        reference = functools.partial(self.reference, **static)
        tolerance = self.tolerance[jnp.dtype(case.dtype).name]
        return compare(pallas, reference, self.inputs(case), tolerance, seed=case.seed, gradients=self.differentiable)


TRITON_CALL = "__gpu$xla.gpu.triton"  # the custom-call target Pallas lowers a GPU kernel to


def triton_kernel_calls(fn: Callable, *args) -> int:
    """How many Triton kernels jitted `fn(*args)` holds once lowered for a CUDA GPU, lowered here by `jax.export`
    without a GPU: Pallas runs its Triton lowering in Python, so a primitive, an indexing form or a block shape
    that lowering lacks fails on CPU. (Compiling that IR to PTX, and the shared-memory limit, still need a GPU.)"""
    from jax import export  # a submodule `import jax` does not load on JAX 0.4.34

    # Newer JAX refuses to serialise a Triton call (no compatibility guarantee); only the IR is wanted here.
    allow_triton = export.DisabledSafetyCheck.custom_call(TRITON_CALL)
    module = export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=[allow_triton])(*args).mlir_module()
    return module.count(TRITON_CALL)
