"""The stand-alone self-attention ablations trained to a plateau, one factor at a time around a base cell.

Base: papers/stand_alone_attention/config.py:reproduce (attention in the last stage, k = 7, relative positions,
width 8, 2 heads, strided stem; 800 steps of batch 128 on offline Fashion-MNIST, test accuracy every 50 steps).
Each variant changes one factor of the base: k = 3; positions none / absolute; attention in the first stage
instead; the 3x3 conv everywhere (the paper's baseline). Three seeds each: 18 runs, which took 77 min summed, about
40 min of wall time on 2 CPU cores as two 1-core trials at a time on Ray. A one-factor design rather than
the fast scale's full grid (configs/sweeps/sasa_ablation.py), so every comparison is between two cells that differ
in one factor only. The default sweep of `python -m papers.stand_alone_attention.reproduce` (add
`--max-concurrent 2` for Ray).
"""

from common.sweep import Sweep

CONFIG = "papers/stand_alone_attention/config.py:reproduce"
SEEDS = [0, 1, 2]

SWEEP = Sweep(config=CONFIG, axes={"model.kernel_size": [7, 3], "seed": SEEDS})
PLACEMENT = Sweep(config=CONFIG, axes={"model.attention_stages": ["early"], "seed": SEEDS})
POSITIONAL = Sweep(config=CONFIG, axes={"model.positional": ["none", "absolute"], "seed": SEEDS})
BASELINE = Sweep(config=CONFIG, axes={"model.spatial_layer": ["conv3x3"], "seed": SEEDS})
SWEEPS = [PLACEMENT, SWEEP, POSITIONAL, BASELINE]  # the costliest runs first, so the last ones are short
