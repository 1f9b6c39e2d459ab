"""REINFORCE with a learned baseline, on-policy, as an agent (common/rl/agent.py): the minimal agent that needs no
replay table. The actor samples from the softmax policy and fills a rollout of `rollout_length` steps in memory;
each learner step is one gradient step on that rollout, which is then dropped.

A return is the discounted sum of rewards to the episode's end; where the rollout or a step limit (truncation)
cuts an episode, it bootstraps from the baseline's value of the next observation. The policy-gradient loss weighs
log pi(a|s) by the advantage (return - baseline); the baseline regresses on the returns; an entropy bonus keeps
the policy from collapsing early. The policy and the baseline are separate MLPs over the flattened observation.
"""

import dataclasses
import math
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax
from flax import nnx
from ml_collections import ConfigDict

from common.rl.agent import EnvironmentSpec, GenericActor, VariableClient, split_params
from common.rl.config import Experiment
from common.rl.dqn.networks import DenseHead
from common.rl.ring_buffer import transition_arrays
from common.train import optim


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    """The `agent` section of a REINFORCE config (name: "reinforce")."""

    hidden: tuple[int, ...]  # layer sizes of the policy and of the baseline
    discount: float
    rollout_length: int  # environment steps per learner step
    optimizer: ConfigDict  # common/train/optim.py's fields
    baseline_cost: float = 0.5
    entropy_cost: float = 0.01


class PolicyBaselineNetwork(nnx.Module):
    """observations [batch, *observation_shape] -> (policy logits [batch, actions], baseline values [batch])."""

    def __init__(self, observation_shape, num_actions: int, hidden=(64,), *, rngs: nnx.Rngs):
        features = math.prod(observation_shape)
        self.policy = DenseHead(features, hidden, num_actions, 1, rngs=rngs)
        self.baseline = DenseHead(features, hidden, 1, 1, rngs=rngs)

    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = observations.reshape(observations.shape[0], -1)
        return self.policy(x), self.baseline(x)[:, 0]


def rollout_returns(rewards, discounts, next_values, continues) -> jax.Array:
    """The return of each step of one rollout, all [T]: G_t = r_t + discount_t * (G_{t+1} if continues_t else
    next_values_t); the last step bootstraps from next_values whatever continues says."""
    chex.assert_rank([rewards, discounts, next_values, continues], 1)
    chex.assert_equal_shape([rewards, discounts, next_values, continues])
    return rlax.lambda_returns(rewards, discounts, next_values, continues)


def reinforce_loss(logits, values, actions, rewards, discounts, next_values, continues, baseline_cost, entropy_cost):
    """The loss of one rollout of T steps: logits [T, actions]; values [T] (baseline at each observation); actions,
    rewards [T]; discounts [T] (0 where the episode terminated); next_values [T] (baseline at each next observation);
    continues [T]: 1 where the return runs on into the next step, 0 where it bootstraps from next_values (a
    truncation; the rollout's last step always bootstraps). Returns (loss, metrics)."""
    chex.assert_rank([logits, values, actions], [2, 1, 1])
    chex.assert_equal_shape([values, actions, rewards])
    returns = rollout_returns(rewards, discounts, jax.lax.stop_gradient(next_values), continues)
    advantages = returns - values
    weights = jnp.ones_like(rewards)
    policy_loss = rlax.policy_gradient_loss(logits, actions, advantages, weights)  # stops the advantages' gradient
    baseline_loss = 0.5 * jnp.mean(jnp.square(advantages))
    entropy_loss = rlax.entropy_loss(logits, weights)
    loss = policy_loss + baseline_cost * baseline_loss + entropy_cost * entropy_loss
    return loss, {"policy_loss": policy_loss, "baseline_loss": baseline_loss, "entropy": -entropy_loss}


class Rollout:
    """The on-policy 'replay': the last `length` steps in preallocated arrays; `sample` hands them over and starts
    an empty rollout."""

    def __init__(self, length: int, observation_shape, *, discount: float):
        self.length, self.discount = length, discount
        self._arrays = transition_arrays(length, observation_shape, ("reward", "discount", "continues"))
        self._count, self._observation = 0, None

    def add_first(self, observation: np.ndarray) -> None:
        self._observation = np.asarray(observation)

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool):
        if self._count == self.length:
            raise RuntimeError(f"the rollout holds {self.length} steps already: the learner steps on it first")
        t, arrays = self._count, self._arrays
        arrays["observation"][t], arrays["next_observation"][t] = self._observation, next_observation
        arrays["action"][t], arrays["reward"][t] = action, reward
        arrays["discount"][t] = 0.0 if terminated else self.discount
        arrays["continues"][t] = 0.0 if truncated else 1.0
        self._count, self._observation = t + 1, np.asarray(next_observation)

    def sample(self) -> dict[str, np.ndarray]:
        """The full rollout, [length, ...] per field."""
        if self._count != self.length:
            raise RuntimeError(f"the rollout holds {self._count} of its {self.length} steps")
        self._count = 0
        return {name: array.copy() for name, array in self._arrays.items()}

    def size(self) -> int:
        return self._count

    def flush(self) -> None:
        """Nothing to send: the rollout lives in this process."""


class ReinforceLearner:
    """Holds `state` = {params, optimizer, updates}; `step` is one jitted gradient step on the next rollout."""

    def __init__(self, config: ReinforceConfig, network: nnx.Module, *, total_updates: int, dataset):
        self.graphdef, params = split_params(network)
        tx = optim.make_optimizer(config.optimizer, total_updates)
        self.state = {"params": params, "optimizer": tx.init(params), "updates": jnp.zeros((), jnp.int32)}
        self._dataset = dataset
        self._updates = 0  # state["updates"] kept on the host: reading the device's copy waits for the update

        def loss_fn(params, rollout):
            network = nnx.merge(self.graphdef, params)
            logits, values = network(rollout["observation"])
            _, next_values = network(rollout["next_observation"])
            return reinforce_loss(
                logits,
                values,
                rollout["action"],
                rollout["reward"],
                rollout["discount"],
                next_values,
                rollout["continues"],
                config.baseline_cost,
                config.entropy_cost,
            )

        def update(state, rollout):
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], rollout)
            updates, opt_state = tx.update(grads, state["optimizer"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            new_state = {"params": params, "optimizer": opt_state, "updates": state["updates"] + 1}
            return new_state, {"loss": loss, **metrics}

        self._update = jax.jit(update, donate_argnums=0)

    @property
    def updates(self) -> int:
        return self._updates

    def get_variables(self) -> tuple[int, dict]:
        return self.updates, self.state["params"]

    def step(self) -> dict[str, jax.Array]:
        self.state, metrics = self._update(self.state, self._dataset.sample())
        self._updates += 1
        return metrics

    def save(self) -> dict:
        return self.state

    def restore(self, state: dict) -> None:
        self.state, self._updates = state, int(state["updates"])


class SoftmaxPolicy:
    """Samples actions from the policy's softmax (the Gumbel-max trick over numpy noise, seeded)."""

    def __init__(self, graphdef: nnx.GraphDef, *, seed: int):
        self._rng = np.random.default_rng(seed)
        self._logits = jax.jit(lambda params, observation: nnx.merge(graphdef, params)(observation[None])[0][0])

    def select_action(self, params, observation: np.ndarray, updates: int) -> int:
        """observation [*observation_shape] -> an action drawn with probability softmax(logits)."""
        logits = np.asarray(self._logits(params, observation))
        return int(np.argmax(logits + self._rng.gumbel(size=logits.shape)))


class ReinforceBuilder:
    off_policy: ClassVar[bool] = False
    config_class: ClassVar[type] = ReinforceConfig

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self._agent, self._run = experiment.agent, experiment.run

    def make_networks(self, spec: EnvironmentSpec, seed: int) -> nnx.Module:
        return PolicyBaselineNetwork(spec.observation_shape, spec.num_actions, self._agent.hidden, rngs=nnx.Rngs(seed))

    def make_replay_tables(self, *, single_process: bool) -> list:
        return []

    def make_replay(self, spec: EnvironmentSpec, client) -> Rollout:
        return Rollout(self._agent.rollout_length, spec.observation_shape, discount=self._agent.discount)

    def make_dataset(self, client):
        raise ValueError("REINFORCE learns on-policy from rollouts in its own process; it has no replay table")

    def make_adder(self, client, networks=None, variables=None):
        return self.make_dataset(client)

    def make_learner(self, networks: nnx.Module, dataset: Rollout) -> ReinforceLearner:
        return ReinforceLearner(self._agent, networks, total_updates=self._run.total_updates, dataset=dataset)

    def make_actor(
        self, networks: nnx.Module, spec: EnvironmentSpec, variables: VariableClient, adder, *, seed: int
    ) -> GenericActor:
        return GenericActor(SoftmaxPolicy(nnx.split(networks)[0], seed=seed).select_action, variables, adder)

    def learning_starts(self) -> int:
        return 0

    def updates_due(self, env_steps: int) -> int:
        return min(env_steps // self._agent.rollout_length, self._run.total_updates)

    def total_env_steps(self) -> int:
        return self._run.total_updates * self._agent.rollout_length
