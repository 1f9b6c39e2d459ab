"""The agent protocol the runners take (Acme's shape): a builder makes an agent's networks, replay tables, learner
and actor, so common/rl/runner.py (one process) and common/rl/distributed.py (a Reverb server, actor processes,
the learner) run any agent without knowing which.

    builder = agents.make_builder(config)            # typed config, checked before anything starts
    networks = builder.make_networks(spec, seed)     # an nnx.Module: what the actor and the learner share
    tables = builder.make_replay_tables(single_process=True)   # [] for an on-policy agent
    replay = builder.make_replay(spec, client)       # one process: what the actor adds to and the learner reads
    learner = builder.make_learner(networks, replay)
    actor = builder.make_actor(networks, spec, VariableClient(learner), replay, seed=seed + 1)

Off-policy agents (the DQN family) bring a Reverb table and an n-step writer; an on-policy agent (REINFORCE) brings
no table: its actor fills a rollout in memory and its learner steps on it. In one process the runner steps the
learner until `updates_due(env_steps)`; distributed, the actors write through `make_adder` and the learner reads
through `make_dataset`, paced by the table's rate limiter (off-policy agents only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
from flax import nnx

from common.compat import import_reverb
from common.rl.environments import Step

reverb = import_reverb()


@dataclasses.dataclass(frozen=True)
class EnvironmentSpec:
    """What networks and replay need to know of an environment."""

    observation_shape: tuple[int, ...]
    num_actions: int


def split_params(networks: nnx.Module) -> tuple[nnx.GraphDef, dict]:
    """(graphdef, params) with params as nested dicts of arrays, the form learners and actors hand to jitted
    functions: jit flattens dicts in C++ but an nnx.State in Python, which for a small network costs more than its
    forward pass (about 30 us a call for an MLP's 6 arrays). `nnx.merge(graphdef, params)` inside the function
    rebuilds the module."""
    graphdef, state = nnx.split(networks)
    return graphdef, state.to_pure_dict()


class Adder(Protocol):
    """Where an actor's experience goes (Acme's adder): a replay writer, or an on-policy rollout."""

    def add_first(self, observation: np.ndarray) -> None: ...

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool): ...


class Dataset(Protocol):
    """What a learner reads: a batch of replay items, or the rollout gathered since the last step."""

    def sample(self) -> Any: ...


class Replay(Adder, Dataset, Protocol):
    """One process's replay: the actor adds to it and the learner samples from the same object."""

    def size(self) -> int: ...

    def flush(self) -> None:
        """Sends what is still buffered to the table (before a checkpoint of it)."""


class VariableSource(Protocol):
    def get_variables(self) -> tuple[int, dict]:
        """(updates, params): the learner's update count and the parameters an actor acts with (`split_params`)."""


class Learner(VariableSource, Protocol):
    """Acme's learner: `step` is one update on data it reads itself; `save`/`restore` move the checkpointed state."""

    @property
    def updates(self) -> int: ...

    def step(self) -> dict[str, Any]:
        """One update; returns its metrics (scalars, possibly still on the device)."""

    def save(self) -> Any:
        """The pytree to checkpoint: everything the learner changes."""

    def restore(self, state: Any) -> None: ...


class Actor(Protocol):
    """Acme's actor: picks actions, hands what it saw to its adder, and refreshes its copy of the parameters."""

    def select_action(self, observation: np.ndarray) -> int: ...

    def observe_first(self, observation: np.ndarray) -> None: ...

    def observe(self, action: int, step: Step) -> None: ...

    def update(self) -> None: ...


class AgentBuilder(Protocol):
    """Makes one agent's parts from its typed config (`experiment`, see common/rl/agents.py)."""

    off_policy: ClassVar[bool]  # False: no replay tables, so one process only
    experiment: Any

    def make_networks(self, spec: EnvironmentSpec, seed: int) -> nnx.Module: ...

    def make_replay_tables(self, *, single_process: bool) -> list[reverb.Table]:
        """The Reverb tables the agent needs ([] for an on-policy agent). `single_process`: no limiter blocking."""

    def make_replay(self, spec: EnvironmentSpec, client: reverb.Client | None) -> Replay:
        """One process's replay, on the tables' server (`client`) or in memory (client None: no tables)."""

    def make_adder(self, client: reverb.Client, networks: nnx.Module, variables: VariableClient) -> Adder:
        """A distributed actor's writer into the tables; `networks` and `variables` (the actor's copy of the
        learner's parameters) let it score the items it writes (initial priorities)."""

    def make_dataset(self, client: reverb.Client) -> Dataset:
        """The distributed learner's reader of the tables."""

    def make_learner(self, networks: nnx.Module, dataset: Dataset | None) -> Learner: ...

    def make_actor(
        self,
        networks: nnx.Module,
        spec: EnvironmentSpec,
        variables: VariableClient,
        adder: Adder | None,
        *,
        seed: int,
    ) -> Actor: ...

    def learning_starts(self) -> int:
        """Environment steps before the first update."""

    def updates_due(self, env_steps: int) -> int:
        """One process: the updates that should have been made after `env_steps` environment steps."""

    def total_env_steps(self) -> int:
        """One process: the environment steps of a whole run (run.total_updates updates)."""


class VariableClient:
    """An actor's copy of a learner's variables, fetched on every `update_period`-th call of `update` (Acme's)."""

    def __init__(self, source: VariableSource, update_period: int = 1):
        self._source, self._period, self._calls = source, update_period, 0
        self.updates, self.params = source.get_variables()

    def update(self) -> None:
        self._calls += 1
        if self._calls % self._period == 0:
            self.updates, self.params = self._source.get_variables()


class GenericActor:
    """An actor from a policy: `policy(params, observation, updates) -> action`; experience goes to `adder`."""

    def __init__(self, policy: Callable[[dict, np.ndarray, int], int], variables: VariableClient, adder):
        self._policy, self._variables, self._adder = policy, variables, adder

    def select_action(self, observation: np.ndarray) -> int:
        return self._policy(self._variables.params, observation, self._variables.updates)

    def observe_first(self, observation: np.ndarray) -> None:
        if self._adder is not None:
            self._adder.add_first(observation)

    def observe(self, action: int, step: Step) -> None:
        if self._adder is not None:
            self._adder.add(action, step.reward, step.observation, step.terminated, step.truncated)

    def update(self) -> None:
        self._variables.update()
