"""The replay study's grid on MinAtar, ~10x below the paper's Atari grid (papers/replay_fundamentals/README.md).

Capacity 10K..1M x oldest-policy age 2.5K..2.5M gradient updates, 1.25M updates a run, the five MinAtar games,
3 seeds, DQN with 1- and 3-step returns; baseline cell 100K / 25K (replay ratio 0.25); the two lowest-ratio cells
skipped as in the paper. Sized for accelerators and many parallel jobs, not for a 2-core CPU.
Run: python -m papers.replay_fundamentals.reproduce --sweep configs/sweeps/replay_minatar.py
"""

from common.sweep import Sweep
from configs.sweeps import replay_ratio_at_least

SWEEP = Sweep(
    config="papers/replay_fundamentals/config.py:minatar_dqn",
    axes={
        "agent.n_step": [1, 3],
        "replay.capacity": [10_000, 30_000, 100_000, 300_000, 1_000_000],
        "replay.oldest_policy_age": [2_500, 25_000, 250_000, 2_500_000],
        "env.name": [f"minatar/{game}" for game in ("asterix", "breakout", "freeway", "seaquest", "space_invaders")],
        "seed": [0, 1, 2],
    },
    where=replay_ratio_at_least(0.01),
)
BASELINE = {"replay.capacity": 100_000, "replay.oldest_policy_age": 25_000}
GAME_KEY = "env.name"
AGENT_KEY = "agent.n_step"
