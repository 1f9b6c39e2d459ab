"""Training for the replay study: the runners of common/rl, picked by `config.run.mode`."""

from ml_collections import ConfigDict

from common import compat
from common.registry import lookup
from common.rl import agents, distributed, runner
from papers.replay_fundamentals import model

RUNNERS = {
    "single_process": runner.train_single_process,
    "distributed": distributed.train_distributed,
}


def with_replay_ratio(config: ConfigDict) -> ConfigDict:
    """A copy of `config` whose replay_ratio is oldest_policy_age / capacity when the age is set (a grid cell)."""
    config = ConfigDict(config.to_dict())
    age = config.replay.get("oldest_policy_age", 0)
    if age:
        config.replay.replay_ratio = age / config.replay.capacity
    return config


def check_config(config: ConfigDict) -> None:
    """Refuses, in one line, a run that needs Reverb where dm-reverb is not installed (the current stack)."""
    if config.replay.backend == "reverb" or config.run.mode == "distributed":
        compat.require_reverb()


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    check_config(config)
    run = lookup(RUNNERS, config.run.mode, "run mode")
    return run(with_replay_ratio(config), workdir)


def build_for_dry_run(config: ConfigDict):
    experiment = agents.make_builder(config).experiment
    env = runner.make_env(experiment.env, experiment.seed)
    return model.build_model(config, env.observation_shape, env.num_actions), env.observation_shape
