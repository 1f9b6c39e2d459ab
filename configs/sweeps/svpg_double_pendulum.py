"""SVPG against its baselines on the paper's inverted double pendulum (gymnasium MuJoCo): the comparison of
configs/sweeps/svpg_swingup.py on papers/svpg/config.py:double_pendulum_cpu (1% of the paper's samples, as there,
but 100 iterations: every method still rises linearly there, far from a plateau, 2 seeds).
Measured: 18 min summed over the 6 runs, 9 min of wall time as two 1-core trials side by side.
Run: python -m papers.svpg.reproduce --sweep configs/sweeps/svpg_double_pendulum.py --max-concurrent 2
"""

from configs.sweeps.svpg_swingup import paper_task_sweep

SWEEP = paper_task_sweep("double_pendulum_cpu")
SWEEPS = [SWEEP]
