"""SVPG against its baselines at CartPole scale: what this 2-core CPU can run (papers/svpg/README.md).

16 particles, REINFORCE with a learned baseline, 600 samples per particle per iteration, 120 iterations (each
method's best agent levels off); SVPG (alpha = 10), 16 independent agents and one joint agent with 16 times the
samples, 3 seeds; then the temperature ablation (alpha = 1 and 100, seed 0): 7 min summed over the 11 runs.
Run: python -m papers.svpg.reproduce --sweep configs/sweeps/svpg_cartpole.py
"""

from common.sweep import Sweep

SWEEP = Sweep(
    config="papers/svpg/config.py:cartpole",
    axes={"svpg.method": ["svpg", "independent", "joint"], "seed": [0, 1, 2]},
)
SWEEPS = [
    SWEEP,
    Sweep(
        config="papers/svpg/config.py:cartpole", axes={"svpg.method": ["svpg"], "svpg.alpha": [1.0, 100.0], "seed": [0]}
    ),
]
