"""The paper's agents are Dopamine's DQN and Rainbow; their networks live in common/rl/dqn/networks.py and are
picked by `config.agent.network` (minatar: one 3x3x16 conv + 128 units; nature: the Atari network; mlp)."""

from flax import nnx
from ml_collections import ConfigDict

from common.rl.dqn import networks


def build_model(config: ConfigDict, observation_shape, num_actions: int, rngs: nnx.Rngs) -> nnx.Module:
    return networks.make_network(config.agent, observation_shape, num_actions, rngs)
