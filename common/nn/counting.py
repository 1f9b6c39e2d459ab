"""Parameter and FLOP counts, as papers report them (`main.py --dry_run`).

FLOPs count the matrix work only: every `dot_general` and `conv_general_dilated` in the traced program, a
multiply-add counted as 2. Elementwise ops, normalisation, pooling and softmax are left out, which is how the
ResNet and attention papers count (ResNet-50 at 224 px: 4.1 G multiply-adds = 8.2 GFLOPs).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def count_params(model: nnx.Module) -> int:
    """Number of scalars in the model's nnx.Param variables (BatchNorm running statistics excluded)."""
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


def _dot_flops(eqn) -> int:
    (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    contracted = math.prod(lhs[d] for d in lhs_contract)
    return 2 * math.prod(out) * contracted


def _conv_flops(eqn) -> int:
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    dims = eqn.params["dimension_numbers"]
    kernel_in = rhs[dims.rhs_spec[1]]  # input features per group
    kernel_spatial = math.prod(rhs[d] for d in dims.rhs_spec[2:])
    return 2 * math.prod(out) * kernel_in * kernel_spatial


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        values = value if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            if isinstance(item, jax.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.core.Jaxpr):
                yield item


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        else:
            inner = sum(_jaxpr_flops(sub) for sub in _sub_jaxprs(eqn))
            if name == "scan":
                inner *= eqn.params["length"]
            elif name == "cond":  # count the most expensive branch once
                inner = max((_jaxpr_flops(b.jaxpr) for b in eqn.params["branches"]), default=0)
            total += inner
    return total


def count_flops(fn, *args) -> int:
    """FLOPs of one call `fn(*args)` (args may be jax.ShapeDtypeStruct); a while loop's body is counted once."""
    return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def count_model_flops(model: nnx.Module, input_shape: tuple[int, ...], dtype=jnp.float32) -> int:
    """FLOPs of one eval-mode forward pass of `model` on a single example of `input_shape` (no batch axis)."""
    graphdef, state = nnx.split(model)

    def forward(state, x):
        module = nnx.merge(graphdef, state)
        module.eval()
        return module(x)

    abstract_state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    return count_flops(forward, abstract_state, jax.ShapeDtypeStruct((1, *input_shape), dtype))
