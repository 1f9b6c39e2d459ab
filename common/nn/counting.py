"""Parameter and FLOP counts, as papers report them (every paper's `main.py --dry_run`).

FLOPs count the matrix work only: every `dot_general` and `conv_general_dilated` in the traced program, a
multiply-add counted as 2. Elementwise ops, activations, normalisation, pooling and softmax are left out; that is
how the ResNet and attention papers count (ResNet-50 at 224x224: 4.1 G multiply-adds = 8.2 GFLOPs). Counting
works on the jaxpr, so it never runs the model and accepts abstract (`nnx.eval_shape`) models.
"""

import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend import core as jax_core  # jax.core.Jaxpr* are gone after JAX 0.4; jax.extend.core has them on both


def count_params(model: nnx.Module) -> int:
    """Number of scalars in the model's nnx.Param variables (BatchNorm running statistics are not parameters)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


def _dot_general_flops(eqn: jax_core.JaxprEqn) -> int:
    """2 * batch * M * N * K for a dot_general with the given dimension numbers."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
    lhs_shape, rhs_shape = (var.aval.shape for var in eqn.invars)
    batch = math.prod(lhs_shape[d] for d in lhs_batch)
    contracted = math.prod(lhs_shape[d] for d in lhs_contract)
    lhs_free = math.prod(n for d, n in enumerate(lhs_shape) if d not in (*lhs_contract, *lhs_batch))
    rhs_free = math.prod(n for d, n in enumerate(rhs_shape) if d not in (*rhs_contract, *rhs_batch))
    return 2 * batch * lhs_free * rhs_free * contracted


def _conv_flops(eqn: jax_core.JaxprEqn) -> int:
    """2 * N * out_spatial * Cout * (Cin / feature_group_count) * kernel_spatial.

    The kernel's input-feature axis already holds Cin / feature_group_count, and each output element is one dot
    product over that axis and the kernel window (zeros inserted by lhs dilation are counted as work).
    """
    kernel_shape = eqn.invars[1].aval.shape
    out_shape = eqn.outvars[0].aval.shape
    dims = eqn.params["dimension_numbers"]
    kernel_in_features = kernel_shape[dims.rhs_spec[1]]
    kernel_spatial = math.prod(kernel_shape[d] for d in dims.rhs_spec[2:])
    return 2 * math.prod(out_shape) * kernel_in_features * kernel_spatial


def _sub_jaxprs(eqn: jax_core.JaxprEqn) -> Iterator[jax_core.Jaxpr]:
    """Jaxprs nested in an equation's parameters (pjit, closed_call, remat, custom_jvp/vjp, while, ...)."""
    for value in eqn.params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def _jaxpr_flops(jaxpr: jax_core.Jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_general_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":  # one branch runs: count the most expensive
            total += max(_jaxpr_flops(branch.jaxpr) for branch in eqn.params["branches"])
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr)
        else:  # a while loop's trip count is unknown when tracing: its cond and body count once
            total += sum(_jaxpr_flops(sub) for sub in _sub_jaxprs(eqn))
    return total


def count_flops(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs of one call `fn(*args)`, a multiply-add counted as 2; args may hold jax.ShapeDtypeStruct leaves."""
    return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def count_model_flops(model: nnx.Module, input_shape: tuple[int, ...], dtype: Any = jnp.float32) -> int:
    """FLOPs of one eval-mode forward pass of `model` on a batch of 1 example of `input_shape` (no batch axis)."""
    graphdef, state = nnx.split(model)

    def forward(state, x):
        module = nnx.merge(graphdef, state)
        module.eval()
        return module(x)

    abstract_state = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype), state)
    return count_flops(forward, abstract_state, jax.ShapeDtypeStruct((1, *input_shape), dtype))
