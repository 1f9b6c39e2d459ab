"""Q-networks for the DQN family, selected by name: one output per action, or `num_atoms` logits per action for
the distributional (C51) head.

Every network maps observations [batch, *observation_shape] to [batch, num_actions] (num_atoms == 1) or
[batch, num_actions, num_atoms] logits: a convolutional torso (none for vector observations), fully connected
layers of the sizes in `hidden`, then the head.
"""

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from ml_collections import ConfigDict

from common.compat import List
from common.registry import lookup


class DenseHead(nnx.Module):
    """[batch, features] -> ReLU layers of sizes `hidden` -> [batch, actions] or [batch, actions, atoms]."""

    def __init__(self, features: int, hidden: Sequence[int], num_actions: int, num_atoms: int, *, rngs: nnx.Rngs):
        sizes = [features, *hidden]
        self.layers = List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])
        self.out = nnx.Linear(sizes[-1], num_actions * num_atoms, rngs=rngs)
        self.num_actions, self.num_atoms = num_actions, num_atoms

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = nnx.relu(layer(x))
        out = self.out(x)
        return out if self.num_atoms == 1 else out.reshape(x.shape[0], self.num_actions, self.num_atoms)


class MLPQNetwork(nnx.Module):
    """Vector observations (classic control): the dense layers only."""

    def __init__(self, observation_shape, num_actions: int, num_atoms: int, hidden=(64, 64), *, rngs: nnx.Rngs):
        self.head = DenseHead(math.prod(observation_shape), hidden, num_actions, num_atoms, rngs=rngs)

    def __call__(self, observations: jax.Array) -> jax.Array:
        return self.head(observations.reshape(observations.shape[0], -1))


class MinAtarQNetwork(nnx.Module):
    """The MinAtar paper's network: one 3x3 conv with 16 channels over [batch, 10, 10, channels], then (128,)."""

    def __init__(self, observation_shape, num_actions: int, num_atoms: int, hidden=(128,), *, rngs: nnx.Rngs):
        height, width, channels = observation_shape
        self.conv = nnx.Conv(channels, 16, (3, 3), padding="VALID", rngs=rngs)
        self.head = DenseHead((height - 2) * (width - 2) * 16, hidden, num_actions, num_atoms, rngs=rngs)

    def __call__(self, observations: jax.Array) -> jax.Array:
        x = nnx.relu(self.conv(observations))
        return self.head(x.reshape(x.shape[0], -1))


class NatureQNetwork(nnx.Module):
    """The DQN Nature network over stacked Atari frames [batch, frames, 84, 84] with values 0..255."""

    def __init__(self, observation_shape, num_actions: int, num_atoms: int, hidden=(512,), *, rngs: nnx.Rngs):
        frames = observation_shape[0]
        self.convs = List(
            [
                nnx.Conv(frames, 32, (8, 8), strides=4, padding="VALID", rngs=rngs),
                nnx.Conv(32, 64, (4, 4), strides=2, padding="VALID", rngs=rngs),
                nnx.Conv(64, 64, (3, 3), strides=1, padding="VALID", rngs=rngs),
            ]
        )
        self.head = DenseHead(7 * 7 * 64, hidden, num_actions, num_atoms, rngs=rngs)

    def __call__(self, observations: jax.Array) -> jax.Array:
        x = jnp.moveaxis(observations, 1, -1) / 255.0
        for conv in self.convs:
            x = nnx.relu(conv(x))
        return self.head(x.reshape(x.shape[0], -1))


NETWORKS: dict[str, Callable[..., nnx.Module]] = {
    "mlp": MLPQNetwork,
    "minatar": MinAtarQNetwork,
    "nature": NatureQNetwork,
}


def make_network(config: ConfigDict, observation_shape, num_actions: int, rngs: nnx.Rngs) -> nnx.Module:
    """config (the agent's) fields: network (a NETWORKS name), hidden (layer sizes), distributional, num_atoms."""
    factory = lookup(NETWORKS, config.network, "q-network")
    num_atoms = int(config.num_atoms) if config.distributional else 1
    return factory(tuple(observation_shape), num_actions, num_atoms, tuple(config.hidden), rngs=rngs)
