"""Small agents on CartPole for the library's RL tests (the papers' configs stay out of library tests), and the
return of a random policy to compare them with."""

import numpy as np
from ml_collections import ConfigDict

from common.rl.environments import make_environment

CARTPOLE = {"name": "cartpole", "max_episode_steps": 500, "sticky_action_prob": 0.0}


def dqn_smoke(**run) -> ConfigDict:
    """DQN for 120 updates at replay ratio 0.25 through a Reverb table, checkpointing every 60: seconds."""
    config = ConfigDict(
        {
            "seed": 0,
            "env": CARTPOLE,
            "agent": {
                "name": "dqn",
                "network": "mlp",
                "hidden": (32,),
                "distributional": False,
                "num_atoms": 51,
                "v_max": 10.0,
                "discount": 0.99,
                "n_step": 1,
                "optimizer": {"name": "adam", "learning_rate": 1e-3, "eps": 1e-8, "schedule": "constant"},
                "target_update_period": 20,
                "huber_delta": 1.0,
                "importance_exponent": 0.0,
                "epsilon_start": 1.0,
                "epsilon_final": 0.02,
                "epsilon_decay_updates": 50,
            },
            "replay": {
                "backend": "reverb",
                "capacity": 400,
                "sampler": "uniform",
                "priority_exponent": 0.5,
                "replay_ratio": 0.25,
                "batch_size": 16,
                "min_size_to_sample": 64,
            },
            "run": {"total_updates": 120, "log_every": 100, "checkpoint_every": 60, "final_fraction": 0.25},
        }
    )
    config.run.update(run)
    return config


def dqn_cartpole() -> ConfigDict:
    """DQN for 2,000 updates (8.5k environment steps): learns to balance; ~30 s on 2 CPU cores."""
    config = dqn_smoke(total_updates=2_000, log_every=1_000, checkpoint_every=0)
    config.agent.update(hidden=(64, 64), target_update_period=100, epsilon_decay_updates=1_000)
    config.replay.update(capacity=10_000, min_size_to_sample=500, batch_size=32)
    return config


def reinforce_cartpole(**run) -> ConfigDict:
    """REINFORCE with a baseline on 32-step rollouts: 60 updates, 1,920 environment steps; returns ~4x a random
    policy's at the end (seed 0)."""
    config = ConfigDict(
        {
            "seed": 0,
            "env": CARTPOLE,
            "agent": {
                "name": "reinforce",
                "hidden": (64,),
                "discount": 0.99,
                "rollout_length": 32,
                "optimizer": {"name": "adam", "learning_rate": 1e-2, "schedule": "constant"},
            },
            "run": {"total_updates": 60, "log_every": 320, "checkpoint_every": 0, "final_fraction": 0.25},
        }
    )
    config.run.update(run)
    return config


def random_policy_return(episodes=50) -> float:
    env, rng, returns = make_environment("cartpole", seed=0), np.random.default_rng(0), []
    for _ in range(episodes):
        env.reset()
        total, done = 0.0, False
        while not done:
            step = env.step(rng.integers(2))
            total, done = total + step.reward, step.terminated or step.truncated
        returns.append(total)
    return float(np.mean(returns))
