"""The agents the runners can train, by the name in `config.agent.name`, and the typed config they are built from.

A config has sections seed, env, agent (name + the agent's fields), run, and replay for an off-policy agent;
common/rl/config.py describes the shared ones, each builder's `config_class` its agent section.
"""

from ml_collections import ConfigDict

from common.rl import config as rl_config
from common.rl.agent import AgentBuilder
from common.rl.dqn.builder import DQNBuilder
from common.rl.reinforce import ReinforceBuilder

AGENTS: dict[str, type] = {
    "dqn": DQNBuilder,  # DQN and Rainbow: the replay study's agents
    "reinforce": ReinforceBuilder,  # on-policy: REINFORCE with a learned baseline on rollouts
}


def parse(config: ConfigDict) -> tuple[type, rl_config.Experiment]:
    """The builder class and the typed config of `config`; raises on the first bad field, naming it."""
    if "agent" not in config or "name" not in config.agent:
        raise rl_config.ConfigError(f"agent.name is missing; valid choices: {', '.join(sorted(AGENTS))}")
    name = config.agent.name
    builder_class = rl_config.lookup_field(AGENTS, name, "agent", "agent.name")
    sections = set(config.keys()) - {"seed", "env", "agent", "replay", "run"}
    if sections:
        raise rl_config.ConfigError(f"unknown section {sorted(sections)[0]!r}; valid: seed, env, agent, replay, run")
    agent_fields = {key: value for key, value in config.agent.items() if key != "name"}
    has_replay = "replay" in config and config.replay is not None
    if builder_class.off_policy and not has_replay:
        raise rl_config.ConfigError(f"agent {name!r} learns off-policy and needs a replay section")
    experiment = rl_config.Experiment(
        seed=rl_config.convert(config.get("seed"), int, "seed"),
        env=rl_config.from_section(rl_config.EnvConfig, config.env, "env"),
        agent_name=name,
        agent=rl_config.from_section(builder_class.config_class, agent_fields, "agent"),
        replay=rl_config.from_section(rl_config.ReplayConfig, config.replay, "replay") if has_replay else None,
        run=rl_config.from_section(rl_config.RunConfig, config.run, "run"),
    )
    return builder_class, experiment


def make_builder(config: ConfigDict) -> AgentBuilder:
    """The builder of the agent `config` names, over the checked, typed config."""
    builder_class, experiment = parse(config)
    return builder_class(experiment)
