"""Rainbow's components over a DQN config, so studies can add one to DQN or take one from Rainbow (Fedus et al.
2020 use Dopamine's Rainbow: C51, 3-step returns, Adam, prioritised replay; no dueling, double Q or noisy nets)."""

from ml_collections import ConfigDict

from common.sweep import apply_overrides

# Each component as (the value Rainbow uses, the value DQN uses), over dotted config keys.
COMPONENTS = {
    "n_step": ({"agent.n_step": 3}, {"agent.n_step": 1}),
    "c51": ({"agent.distributional": True}, {"agent.distributional": False}),
    "adam": (
        {"agent.optimizer.name": "adam", "agent.optimizer.learning_rate": 6.25e-5, "agent.optimizer.eps": 1.5e-4},
        {"agent.optimizer.name": "rmsprop", "agent.optimizer.learning_rate": 2.5e-4, "agent.optimizer.eps": 1e-5},
    ),
    "prioritized": (
        {"replay.sampler": "prioritized", "agent.importance_exponent": 0.5},
        {"replay.sampler": "uniform", "agent.importance_exponent": 0.0},
    ),
}


def with_components(config: ConfigDict, rainbow_components) -> ConfigDict:
    """`config` with each Rainbow component switched on (if named in `rainbow_components`) or off."""
    for name, (rainbow, dqn) in COMPONENTS.items():
        config = apply_overrides(config, rainbow if name in rainbow_components else dqn)
    return config
