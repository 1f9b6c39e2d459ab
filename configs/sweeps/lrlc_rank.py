"""Low-rank local connectivity at CPU scale: accuracy against the rank K, with conv, LC and wide conv baselines.

Base: papers/low_rank_local/config.py:sweep (the paper's 3-layer network at width 16 instead of 64; 300 steps of
batch 32 on offline Fashion-MNIST, evaluated on the 10k test images). SWEEP trains LRLC layers (row + column
combining weights, softmax) at K in {1, 2, 4, 8, 16}; BASELINES trains the convolution, the dense locally
connected layer and the wide convolution whose spatial layers match the parameters of the rank-4 LRLC network;
three seeds each, 24 runs. Run both (SWEEPS: the cheap baselines first) with
`python -m papers.low_rank_local.reproduce`.

Time: measured before the sweep on the shared 2 cores (load average 3-7 from other jobs), a step of batch 64 took
0.1 s (conv, LRLC K = 1), 0.3 s (LC) and 1.5 s (LRLC K = 16: one convolution with 16 x 16 filters plus the
per-position combination); start-up, compilation and the 10k-image evaluation add 30-100 s a run. At batch 32
that put two seeds (16 runs) at about 30-40 min; they took 49 min while other jobs held the 1-minute load
average at 7-13, and the third seed was added after them (papers/low_rank_local/README.md has the times).
"""

from common.sweep import Sweep

CONFIG = "papers/low_rank_local/config.py:sweep"
SEEDS = [0, 1, 2]

SWEEP = Sweep(config=CONFIG, axes={"seed": SEEDS, "model.layer": ["lrlc"], "model.rank": [1, 2, 4, 8, 16]})
BASELINES = Sweep(config=CONFIG, axes={"seed": SEEDS, "model.layer": ["conv", "lc", "wide_conv"]})
SWEEPS = [BASELINES, SWEEP]
