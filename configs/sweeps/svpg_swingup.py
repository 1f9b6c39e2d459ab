"""SVPG against its baselines on the paper's cart-pole swing-up (dm_control), at the scale this 2-core CPU affords.

papers/svpg/config.py:cartpole_swingup_cpu: the paper's task and networks (100-50-25 tanh Gaussian policy, 500-step
episodes, 16 particles, alpha = 10, A2C) with 1,000 samples per particle per iteration instead of 10,000 and 200
iterations instead of up to 1,000 (SVPG's best agent levels off by then). SVPG, 16 independent agents and one
joint agent with 16 times the samples, 2 seeds.
Measured: 92 min summed over the 6 runs, 46 min of wall time as two 1-core trials side by side.
Run: python -m papers.svpg.reproduce --sweep configs/sweeps/svpg_swingup.py --max-concurrent 2
"""

from common.sweep import Sweep


def paper_task_sweep(variant: str) -> Sweep:
    """SVPG, independent and joint agents, 2 seeds, on one of papers/svpg/config.py's paper-task variants."""
    return Sweep(
        config=f"papers/svpg/config.py:{variant}",
        axes={"svpg.method": ["svpg", "independent", "joint"], "seed": [0, 1]},
    )


SWEEP = paper_task_sweep("cartpole_swingup_cpu")
SWEEPS = [SWEEP]
