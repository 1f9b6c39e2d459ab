"""The DQN family as an agent (common/rl/agent.py): Q-network, one n-step Reverb table (or a ring buffer in one
process), the learner of learner.py, an epsilon-greedy actor. Rainbow is the same agent with its components on
(common/rl/dqn/rainbow.py).

One process keeps the replay ratio by schedule: after `learning_starts` environment steps, updates are due until
updates == floor(replay_ratio * (env_steps - learning_starts)); distributed, the table's limiter keeps it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from flax import nnx
from ml_collections import ConfigDict

from common.compat import import_reverb
from common.rl import replay
from common.rl.agent import EnvironmentSpec, VariableClient
from common.rl.config import Experiment, choices
from common.rl.dqn import networks
from common.rl.dqn.actor import ActorPriorities, DQNActor, EpsilonGreedyPolicy
from common.rl.dqn.learner import Learner
from common.rl.ring_buffer import RingBufferReplay

reverb = import_reverb()

REPLAY = "replay"  # the table's name


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """The `agent` section of a DQN-family config (name: "dqn")."""

    network: str = choices(networks.NETWORKS, "q-network")
    hidden: tuple[int, ...]  # fully connected layer sizes
    distributional: bool  # C51 head and loss
    num_atoms: int
    v_max: float  # the C51 support is [-v_max, v_max]
    discount: float
    n_step: int
    optimizer: ConfigDict  # common/train/optim.py's fields; its name may also be "rmsprop" (learner.OPTIMIZERS)
    target_update_period: int  # gradient updates
    huber_delta: float
    importance_exponent: float  # 0: no prioritised-replay correction
    epsilon_start: float
    epsilon_final: float
    epsilon_decay_updates: int


class DQNBuilder:
    off_policy: ClassVar[bool] = True
    config_class: ClassVar[type] = DQNConfig

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self._agent, self._replay, self._run = experiment.agent, experiment.replay, experiment.run

    def make_networks(self, spec: EnvironmentSpec, seed: int) -> nnx.Module:
        return networks.make_network(self._agent, spec.observation_shape, spec.num_actions, nnx.Rngs(seed))

    def make_replay_tables(self, *, single_process: bool) -> list[reverb.Table]:
        if self._replay.backend == "ring":
            return []
        return [replay.make_table(self._replay, single_process=single_process, name=REPLAY)]

    def make_replay(self, spec: EnvironmentSpec, client: reverb.Client | None):
        options = {
            "batch_size": self._replay.batch_size,
            "n_step": self._agent.n_step,
            "discount": self._agent.discount,
        }
        if client is None:
            return RingBufferReplay(self._replay.capacity, spec.observation_shape, seed=self.experiment.seed, **options)
        return replay.ReverbReplay(
            client,
            REPLAY,
            min_size_to_sample=self._replay.min_size_to_sample,
            prioritized=self._replay.sampler == "prioritized",
            **options,
        )

    def make_adder(self, client: reverb.Client, networks: nnx.Module, variables: VariableClient) -> replay.NStepWriter:
        """On a prioritised table each item enters at the priority the learner would give it, scored with the actor's
        copy of the parameters (`variables`; Ape-X's rule, Horgan et al. 2018: the learner's own loss path,
        |n-step TD error| or the item's C51 cross-entropy, with the online parameters in the target network's place,
        as actors fetch only those); on a uniform table at priority 1 (Acme's rule)."""
        options = {"n_step": self._agent.n_step, "discount": self._agent.discount}
        if self._replay.sampler != "prioritized":
            return replay.NStepWriter(client, REPLAY, **options)
        priorities = ActorPriorities(self._agent, nnx.split(networks)[0], variables)
        return replay.InitialPriorityWriter(client, REPLAY, priorities=priorities, **options)

    def make_dataset(self, client: reverb.Client) -> replay.PrefetchingDataset:
        return replay.PrefetchingDataset(client, REPLAY, self._replay.batch_size)

    def make_learner(self, networks: nnx.Module, dataset) -> Learner:
        return Learner(
            self._agent,
            networks,
            total_updates=self._run.total_updates,
            dataset=dataset,
            prioritized=self._replay.sampler == "prioritized",
        )

    def make_actor(
        self, networks: nnx.Module, spec: EnvironmentSpec, variables: VariableClient, adder, *, seed: int
    ) -> DQNActor:
        policy = EpsilonGreedyPolicy(self._agent, nnx.split(networks)[0], spec.num_actions, seed=seed)
        return DQNActor(policy, variables, adder)

    def learning_starts(self) -> int:
        """Enough environment steps for `min_size_to_sample` complete n-step items."""
        return self._replay.min_size_to_sample + self._agent.n_step

    def updates_due(self, env_steps: int) -> int:
        due = math.floor(self._replay.replay_ratio * (env_steps - self.learning_starts()))
        return min(max(0, due), self._run.total_updates)

    def total_env_steps(self) -> int:
        return self.learning_starts() + math.ceil(self._run.total_updates / self._replay.replay_ratio)
