"""The replay study's grid at CartPole scale: what this 2-core CPU can run (papers/replay_fundamentals/README.md).

Replay capacity x age of the oldest policy (gradient updates), 2,000 updates a run, DQN with and without 3-step
returns, 2 seeds. Baseline cell: capacity 4,000, oldest policy 1,000 (replay ratio 0.25). The lowest-ratio cell
is skipped, as the paper skipped its two lowest.
Run: python -m papers.replay_fundamentals.reproduce --sweep configs/sweeps/replay_cartpole.py
"""

from common.sweep import Sweep
from configs.sweeps import replay_ratio_at_least

SWEEP = Sweep(
    config="papers/replay_fundamentals/config.py:cartpole_dqn",
    axes={
        "agent.n_step": [1, 3],
        "replay.capacity": [1_000, 4_000, 16_000],
        "replay.oldest_policy_age": [250, 1_000, 4_000],
        "seed": [0, 1],
        "run.checkpoint_every": [0],
    },
    where=replay_ratio_at_least(0.02),
)
BASELINE = {"replay.capacity": 4_000, "replay.oldest_policy_age": 1_000}
GAME_KEY = "env.name"
AGENT_KEY = "agent.n_step"
