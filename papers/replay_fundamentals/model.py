"""The paper's agents are Dopamine's DQN and Rainbow: the DQN-family agent of common/rl/dqn (builder.py), whose
network is picked by `config.agent.network` (minatar: one 3x3x16 conv + 128 units; nature: the Atari network; mlp)."""

from flax import nnx
from ml_collections import ConfigDict

from common.rl import agents
from common.rl.agent import EnvironmentSpec


def build_model(config: ConfigDict, observation_shape, num_actions: int) -> nnx.Module:
    """The Q-network the learner starts from (config.seed initialises it)."""
    builder = agents.make_builder(config)
    return builder.make_networks(EnvironmentSpec(tuple(observation_shape), num_actions), builder.experiment.seed)
