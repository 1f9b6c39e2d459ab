"""The typed RL config and the agent table: every bad field fails before an environment or a Reverb server starts,
naming the field and what it accepts; the distributed runner refuses an agent with no replay table."""

import re

import pytest
from ml_collections import ConfigDict

from common.compat import import_reverb
from common.registry import UnknownNameError
from common.rl import agents, distributed, runner
from common.rl.agent import VariableClient
from common.rl.config import ConfigError
from common.rl.dqn.builder import DQNBuilder
from common.rl.reinforce import ReinforceBuilder
from tests.common.rl.cartpole import dqn_smoke, reinforce_cartpole

reverb = import_reverb()

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed


@pytest.fixture
def nothing_starts(monkeypatch):
    """Makes starting an environment or a Reverb server fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("started before the config was checked")

    monkeypatch.setattr(runner, "make_environment", refuse)
    monkeypatch.setattr(reverb, "Server", refuse)


def test_configs_build_typed_agents():
    builder = agents.make_builder(dqn_smoke())
    assert isinstance(builder, DQNBuilder)
    experiment = builder.experiment
    assert experiment.agent.hidden == (32,) and experiment.agent.optimizer.name == "adam"
    assert experiment.replay.capacity == 400 and experiment.run.mode == "single_process"  # a default filled in
    config = reinforce_cartpole()
    config.agent.discount = 1  # an int is a valid float
    builder = agents.make_builder(config)
    assert isinstance(builder, ReinforceBuilder) and builder.experiment.replay is None
    assert builder.experiment.agent.discount == 1.0 and isinstance(builder.experiment.agent.discount, float)


@pytest.mark.parametrize(
    ("section", "key", "value", "error", "message"),
    [
        ("agent", "name", "ppo", UnknownNameError, "agent.name: unknown agent 'ppo'; valid choices: dqn, reinforce"),
        ("agent", "network", "cnn", UnknownNameError, "agent.network: unknown q-network 'cnn'; valid choices: minat"),
        ("replay", "sampler", "prio", UnknownNameError, "replay.sampler: unknown replay sampler 'prio'; valid choices"),
        ("replay", "backend", "deque", UnknownNameError, "unknown replay backend 'deque'; valid choices: reverb, ring"),
        ("env", "name", "cartpol", UnknownNameError, "env.name: unknown environment 'cartpol'; valid choices: acro"),
        ("run", "mode", "async", UnknownNameError, "run.mode: unknown run mode 'async'; valid choices: distributed"),
        ("replay", "capacity", "400", ConfigError, "replay.capacity must be an int, got '400' (str)"),
        ("run", "total_updates", True, ConfigError, "run.total_updates must be an int, got True (bool)"),
        ("agent", "hidden", (32, 1.5), ConfigError, "agent.hidden[1] must be an int, got 1.5 (float)"),
        ("env", "max_episode_steps", "500", ConfigError, "env.max_episode_steps must be an int or None, got '500'"),
        ("agent", "n_steps", 3, ConfigError, "agent.n_steps is not a field of agent; valid fields: discount, "),
    ],
)
def test_bad_fields_fail_naming_the_field_before_anything_starts(
    tmp_path, nothing_starts, section, key, value, error, message
):
    fields = dqn_smoke().to_dict()
    fields[section][key] = value  # a ConfigDict would refuse a value of another type, so rebuild it from the dict
    with pytest.raises(error, match=re.escape(message)):
        runner.train_single_process(ConfigDict(fields), str(tmp_path))


def test_missing_sections_and_fields_are_named(nothing_starts, tmp_path):
    config = reinforce_cartpole()
    del config.agent["rollout_length"]
    with pytest.raises(ConfigError, match="agent.rollout_length is missing"):
        runner.train_single_process(config, str(tmp_path))
    config = dqn_smoke()
    del config["replay"]
    with pytest.raises(ConfigError, match="agent 'dqn' learns off-policy and needs a replay section"):
        runner.train_single_process(config, str(tmp_path))


def test_ring_buffer_settings_it_cannot_keep_are_refused(nothing_starts, tmp_path):
    config = dqn_smoke()
    config.replay.update(backend="ring", sampler="prioritized")
    with pytest.raises(ConfigError, match="replay.backend='ring' samples uniformly; replay.sampler='prioritized'"):
        runner.train_single_process(config, str(tmp_path))
    config.replay.sampler = "uniform"  # periodic checkpoints hold the ring buffer's whole state, so they are kept
    experiment = agents.make_builder(config).experiment
    assert experiment.replay.backend == "ring" and experiment.run.checkpoint_every == 60


def test_the_distributed_runner_refuses_an_on_policy_agent(nothing_starts, tmp_path):
    with pytest.raises(ConfigError, match="agent 'reinforce' learns on-policy .* an off-policy agent: dqn"):
        distributed.train_distributed(reinforce_cartpole(), str(tmp_path))


def test_variable_client_fetches_on_its_period():
    class Source:
        updates = 0

        def get_variables(self):
            self.updates += 1
            return self.updates, {"w": self.updates}

    client = VariableClient(Source(), update_period=3)
    assert client.updates == 1  # fetched once when made
    seen = []
    for _ in range(7):
        client.update()
        seen.append(client.updates)
    assert seen == [1, 1, 2, 2, 2, 3, 3] and client.params == {"w": 3}
