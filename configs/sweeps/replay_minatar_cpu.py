"""The replay study's capacity claim on MinAtar at the scale a 2-core CPU affords (replay_fundamentals README).

Capacity x4 at a fixed replay ratio of 0.25 (10,000 / oldest policy 2,500 updates -> 40,000 / 10,000), DQN with 1-
and 3-step returns, MinAtar Breakout and Space Invaders, 2 seeds: 16 runs of 125,000 updates (500,000 environment
steps, a tenth of the MinAtar paper's 5M frames), about 10 minutes each on one core, so about 1h30 as two 1-core
trials side by side. Baseline cell: capacity 10,000, oldest policy 2,500. configs/sweeps/replay_minatar.py is the
full grid for machines with many parallel jobs.
Run: python -m papers.replay_fundamentals.reproduce --sweep configs/sweeps/replay_minatar_cpu.py --max-concurrent 2
"""

from common.sweep import Sweep

SWEEP = Sweep(
    config="papers/replay_fundamentals/config.py:minatar_dqn",
    axes={
        "env.name": ["minatar/breakout", "minatar/space_invaders"],
        "agent.n_step": [1, 3],
        "replay.capacity": [10_000, 40_000],
        "replay.oldest_policy_age": [2_500, 10_000],
        "seed": [0, 1],
        "run.total_updates": [125_000],
        "run.checkpoint_every": [25_000],
    },
    where=lambda point: point["replay.oldest_policy_age"] / point["replay.capacity"] == 0.25,  # the ratio held
)
BASELINE = {"replay.capacity": 10_000, "replay.oldest_policy_age": 2_500}
GAME_KEY = "env.name"
AGENT_KEY = "agent.n_step"
