"""Activations by name, for the ResNet backbone and the Swish paper ("Searching for activation functions").

Some activations carry parameters (PReLU's slope, Swish's beta, both per channel), so every use site builds its
own instance: `make_activation(name, num_features, rngs=rngs)` returns an nnx.Module acting elementwise, with any
parameters indexed by the last (channel) axis. Add an activation by adding an entry to ACTIVATIONS.
"""

from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
from flax import nnx

from common.registry import lookup


class ActivationFactory(Protocol):
    """Builds one activation for a layer with `num_features` channels on the last axis."""

    def __call__(self, num_features: int, *, rngs: nnx.Rngs) -> nnx.Module: ...


# Parameter-free activations; each docstring is the formula.


def relu(x: jax.Array) -> jax.Array:
    """max(x, 0)."""
    return jax.nn.relu(x)


def leaky_relu(x: jax.Array) -> jax.Array:
    """x if x >= 0 else 0.01 x."""
    return jax.nn.leaky_relu(x, negative_slope=0.01)


def softplus(x: jax.Array) -> jax.Array:
    """log(1 + exp(x))."""
    return jax.nn.softplus(x)


def elu(x: jax.Array) -> jax.Array:
    """x if x > 0 else exp(x) - 1."""
    return jax.nn.elu(x)


def selu(x: jax.Array) -> jax.Array:
    """lambda * (x if x > 0 else alpha (exp(x) - 1)), lambda = 1.0507, alpha = 1.6733 (self-normalising)."""
    return jax.nn.selu(x)


def gelu(x: jax.Array) -> jax.Array:
    """x * Phi(x) = x/2 (1 + erf(x / sqrt 2)): the exact erf form the Swish paper compares against."""
    return jax.nn.gelu(x, approximate=False)


def swish1(x: jax.Array) -> jax.Array:
    """x * sigmoid(x): Swish with beta fixed at 1 (also called SiLU)."""
    return jax.nn.silu(x)


def tanh(x: jax.Array) -> jax.Array:
    """(exp(x) - exp(-x)) / (exp(x) + exp(-x))."""
    return jnp.tanh(x)


def identity(x: jax.Array) -> jax.Array:
    """x (a linear network, as a baseline)."""
    return x


class Elementwise(nnx.Module):
    """Wraps a parameter-free activation so every entry of the table is built and called the same way."""

    def __init__(self, fn: Callable[[jax.Array], jax.Array]):
        self.fn = fn

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)


def _parameter_free(fn: Callable[[jax.Array], jax.Array]) -> ActivationFactory:
    def factory(num_features: int, *, rngs: nnx.Rngs) -> nnx.Module:
        del num_features, rngs  # nothing to learn
        return Elementwise(fn)

    factory.__doc__ = fn.__doc__
    return factory


class PReLU(nnx.Module):
    """x if x >= 0 else a_c x, with a trainable slope a_c per channel, initialised to 0.25 (He et al. 2015)."""

    def __init__(self, num_features: int, *, rngs: nnx.Rngs, init: float = 0.25):
        del rngs  # deterministic init
        self.slope = nnx.Param(jnp.full((num_features,), init, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., num_features]."""
        return jnp.where(x >= 0, x, self.slope.value.astype(x.dtype) * x)


class Swish(nnx.Module):
    """x * sigmoid(beta_c x), with a trainable beta_c per channel, initialised to 1 (jax.nn.swish has no beta)."""

    def __init__(self, num_features: int, *, rngs: nnx.Rngs, init: float = 1.0):
        del rngs  # deterministic init
        self.beta = nnx.Param(jnp.full((num_features,), init, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., num_features]."""
        return x * jax.nn.sigmoid(self.beta.value.astype(x.dtype) * x)


ACTIVATIONS: dict[str, ActivationFactory] = {
    "relu": _parameter_free(relu),
    "lrelu": _parameter_free(leaky_relu),
    "prelu": PReLU,
    "softplus": _parameter_free(softplus),
    "elu": _parameter_free(elu),
    "selu": _parameter_free(selu),
    "gelu": _parameter_free(gelu),
    "swish": Swish,
    "swish1": _parameter_free(swish1),
    "tanh": _parameter_free(tanh),
    "identity": _parameter_free(identity),
}


def make_activation(name: str | ActivationFactory, num_features: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """A fresh activation for a layer with `num_features` channels (last axis); unknown names list the choices.

    `name` may also be a factory itself, for activations built at run time (the Swish paper's searched ones).
    """
    factory = name if callable(name) else lookup(ACTIVATIONS, name, "activation")
    return factory(num_features, rngs=rngs)
