"""Epsilon-greedy acting for the DQN family, with epsilon on a schedule in gradient updates (so a study that
changes the replay ratio keeps the same exploration per unit of learning)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.rl.agent import GenericActor, VariableClient
from common.rl.dqn.learner import atoms_of, make_loss_fn


def epsilon_at(updates: int, config) -> float:
    """Linear from epsilon_start at 0 updates to epsilon_final at epsilon_decay_updates, then flat."""
    fraction = min(updates / max(int(config.epsilon_decay_updates), 1), 1.0)
    return float(config.epsilon_start + fraction * (config.epsilon_final - config.epsilon_start))


class EpsilonGreedyPolicy:
    """Picks actions from the online network's parameters (the learner's, or a copy fetched from it); an agent's
    actor is `common.rl.agent.GenericActor` over its `select_action`."""

    def __init__(self, config, graphdef: nnx.GraphDef, num_actions: int, *, seed: int):
        self.config, self.num_actions = config, num_actions
        self._rng = np.random.default_rng(seed)
        atoms = atoms_of(config) if config.distributional else None

        def greedy(params, observation):
            out = nnx.merge(graphdef, params)(observation[None])[0]
            q = jnp.sum(jax.nn.softmax(out, axis=-1) * atoms, axis=-1) if atoms is not None else out
            return jnp.argmax(q)

        self._greedy = jax.jit(greedy)

    def select_action(self, params, observation: np.ndarray, updates: int) -> int:
        """observation [*observation_shape] -> an action, random with probability epsilon_at(updates)."""
        if self._rng.random() < epsilon_at(updates, self.config):
            return int(self._rng.integers(self.num_actions))
        return int(self._greedy(params, observation))

    def random_state(self) -> dict:
        """The exploration stream's position (a checkpoint keeps it, so a resumed run explores as it would have)."""
        return self._rng.bit_generator.state

    def restore_random_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state


class DQNActor(GenericActor):
    """The generic actor over an EpsilonGreedyPolicy, whose random stream a checkpoint can hold."""

    def __init__(self, policy: EpsilonGreedyPolicy, variables, adder):
        super().__init__(policy.select_action, variables, adder)
        self.policy = policy

    def random_state(self) -> dict:
        return self.policy.random_state()

    def restore_random_state(self, state: dict) -> None:
        self.policy.restore_random_state(state)


class ActorPriorities:
    """Initial priorities of new items from an actor's local copy of the parameters (Ape-X), through the learner's
    loss (`make_loss_fn`) with the online parameters in the target network's place."""

    PAD_ITEMS = 8  # batches are padded to a multiple of this, so only a few shapes are compiled

    def __init__(self, agent_config, graphdef: nnx.GraphDef, variables: VariableClient):
        loss_fn = make_loss_fn(agent_config, graphdef)

        def priorities(params, data):
            return loss_fn(params, params, data, jnp.ones(data["action"].shape, jnp.float32))[1]

        self._priorities, self._variables = jax.jit(priorities), variables

    def __call__(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """data: replay.ITEM_FIELDS [items, ...] -> priorities [items] float32, with the newest fetched parameters."""
        count = len(data["action"])
        pad = -count % self.PAD_ITEMS
        padded = {name: np.concatenate([value, np.repeat(value[-1:], pad, axis=0)]) for name, value in data.items()}
        return np.asarray(self._priorities(self._variables.params, padded), np.float32)[:count]
