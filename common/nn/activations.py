"""Activations by name, for the ResNet backbone and the Swish benchmark.

Some activations carry parameters (PReLU's slope, Swish's beta, both per channel), so each use site builds its
own instance: `make_activation(name, num_features, rngs=rngs)` returns an nnx.Module acting on the last axis.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from common.registry import lookup


class Elementwise(nnx.Module):
    """A parameter-free activation: `fn(x)` elementwise."""

    def __init__(self, fn: Callable[[jax.Array], jax.Array]):
        self.fn = fn

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)


class PReLU(nnx.Module):
    """max(x, 0) + slope * min(x, 0), with a trainable slope per channel (He et al. 2015; init 0.25)."""

    def __init__(self, num_features: int, init: float = 0.25):
        self.slope = nnx.Param(jnp.full((num_features,), init, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.where(x >= 0, x, self.slope.value.astype(x.dtype) * x)


class Swish(nnx.Module):
    """x * sigmoid(beta * x) with a trainable beta per channel (init 1); jax.nn.swish has no beta."""

    def __init__(self, num_features: int, init: float = 1.0):
        self.beta = nnx.Param(jnp.full((num_features,), init, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * jax.nn.sigmoid(self.beta.value.astype(x.dtype) * x)


def _fixed(fn):
    return lambda num_features, rngs: Elementwise(fn)


ACTIVATIONS: dict[str, Callable[[int, nnx.Rngs], nnx.Module]] = {
    "relu": _fixed(jax.nn.relu),  # max(x, 0)
    "lrelu": _fixed(lambda x: jax.nn.leaky_relu(x, 0.01)),  # max(x, 0.01 x)
    "prelu": lambda num_features, rngs: PReLU(num_features),
    "softplus": _fixed(jax.nn.softplus),  # log(1 + exp(x))
    "elu": _fixed(jax.nn.elu),  # x if x > 0 else exp(x) - 1
    "selu": _fixed(jax.nn.selu),  # 1.0507 * elu with alpha 1.67326
    "gelu": _fixed(lambda x: jax.nn.gelu(x, approximate=False)),  # x * Phi(x), the exact erf form
    "swish": lambda num_features, rngs: Swish(num_features),
    "swish1": _fixed(jax.nn.silu),  # x * sigmoid(x): Swish with beta fixed at 1
    "tanh": _fixed(jnp.tanh),
    "identity": _fixed(lambda x: x),
}


def make_activation(name: str, num_features: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """A fresh activation module for a layer with `num_features` channels (last axis)."""
    return lookup(ACTIVATIONS, name, "activation")(num_features, rngs)
