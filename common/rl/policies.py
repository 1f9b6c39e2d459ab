"""Stochastic MLP policies for on-policy learning, as pure functions of their parameters so a batch of policies
(one per particle of SVPG, or one per seed) is one pytree with a leading axis and every call vmaps over it.

    policy = make_policy(observation_size=4, num_actions=2, action_size=0, hidden=(100, 50, 25), seed=0)
    out = policy.apply(params, observations)          # [..., obs] -> logits or means [..., A]
    actions = policy.sample(params, observations, key)
    log_probs = policy.log_prob(params, observations, actions)

Discrete actions: a categorical over `num_actions` logits. Continuous: a Gaussian whose mean is the MLP's output
and whose log standard deviation is one learned vector, independent of the state (the SVPG paper's policy).
The value network (critic or baseline) is the same MLP with one output.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import rlax
from flax import nnx

from common.compat import List


class MLP(nnx.Module):
    """[..., inputs] -> [..., outputs]: tanh hidden layers, a linear output (scaled small so initial policies are
    near uniform / near zero mean)."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], outputs: int, *, rngs: nnx.Rngs, log_std: float | None):
        sizes = (inputs, *hidden)
        self.hidden = List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])
        self.out = nnx.Linear(
            sizes[-1], outputs, kernel_init=nnx.initializers.variance_scaling(0.01, "fan_in", "normal"), rngs=rngs
        )
        self.log_std = nnx.Param(jnp.full((outputs,), log_std, jnp.float32)) if log_std is not None else None

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.hidden:
            x = jnp.tanh(layer(x))
        return self.out(x)


@dataclasses.dataclass(frozen=True)
class Policy:
    """A policy family: `init(key)` gives one parameter pytree; the rest are pure functions of such a pytree."""

    graphdef: nnx.GraphDef
    discrete: bool
    build: Callable[[jax.Array], nnx.State]  # key -> one policy's parameters (vmap it for a batch)

    def init(self, key: jax.Array) -> nnx.State:
        return self.build(key)

    def apply(self, params: nnx.State, observations: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, params)(observations)

    def sample(self, params: nnx.State, observations: jax.Array, key: jax.Array) -> jax.Array:
        """observations [..., obs] -> actions [...] (int32) or [..., A] (float32, unclipped)."""
        out = self.apply(params, observations)
        if self.discrete:
            return jax.random.categorical(key, out).astype(jnp.int32)
        return out + jnp.exp(params["log_std"].value) * jax.random.normal(key, out.shape)

    def log_prob(self, params: nnx.State, observations: jax.Array, actions: jax.Array) -> jax.Array:
        """observations [..., obs], actions [...] or [..., A] -> log pi(a|s) [...]."""
        out = self.apply(params, observations)
        if self.discrete:
            return jnp.take_along_axis(jax.nn.log_softmax(out), actions[..., None], axis=-1)[..., 0]
        sigma = jnp.broadcast_to(jnp.exp(params["log_std"].value), out.shape)
        flat = rlax.gaussian_diagonal().logprob(
            actions.reshape(-1, out.shape[-1]), out.reshape(-1, out.shape[-1]), sigma.reshape(-1, out.shape[-1])
        )
        return flat.reshape(out.shape[:-1])


def _mlp_family(inputs: int, hidden: tuple[int, ...], outputs: int, log_std: float | None):
    def build(key: jax.Array) -> nnx.State:
        return nnx.split(MLP(inputs, hidden, outputs, rngs=nnx.Rngs(params=key), log_std=log_std))[1]

    graphdef = nnx.split(nnx.eval_shape(lambda: MLP(inputs, hidden, outputs, rngs=nnx.Rngs(0), log_std=log_std)))[0]
    return graphdef, build


def make_policy(
    observation_size: int, num_actions: int, action_size: int, hidden: tuple[int, ...], *, init_log_std: float = 0.0
) -> Policy:
    """A categorical policy over `num_actions` (> 0), or else a Gaussian over `action_size` continuous actions."""
    if num_actions > 0:
        graphdef, build = _mlp_family(observation_size, hidden, num_actions, None)
        return Policy(graphdef, True, build)
    if action_size <= 0:
        raise ValueError(f"a policy needs num_actions > 0 or action_size > 0, got {num_actions} and {action_size}")
    graphdef, build = _mlp_family(observation_size, hidden, action_size, init_log_std)
    return Policy(graphdef, False, build)


@dataclasses.dataclass(frozen=True)
class ValueFunction:
    """V(s): the same MLP with one output; `apply(params, observations [..., obs]) -> [...]`."""

    graphdef: nnx.GraphDef
    build: Callable[[jax.Array], nnx.State]

    def init(self, key: jax.Array) -> nnx.State:
        return self.build(key)

    def apply(self, params: nnx.State, observations: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, params)(observations)[..., 0]


def make_value_function(observation_size: int, hidden: tuple[int, ...]) -> ValueFunction:
    return ValueFunction(*_mlp_family(observation_size, hidden, 1, None))
