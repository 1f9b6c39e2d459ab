"""HaloNet vs stand-alone self-attention vs convolution trained to a plateau, over three seeds.

Base: papers/halonet/config.py:reproduce (the fashion_comparison network with the strided stem: stages at 14, 7
and 4 px; 1,000 steps of batch 128 on offline Fashion-MNIST, test accuracy every 50 steps). The one factor is the
spatial layer of every bottleneck, as in configs/sweeps/halonet_comparison.py: 9 runs, which took 90 min summed,
46 min of wall time on 2 CPU cores as two 1-core trials at a time on Ray. The default sweep of
`python -m papers.halonet.reproduce` (add `--max-concurrent 2` for Ray).
"""

from common.sweep import Sweep

SWEEP = Sweep(
    config="papers/halonet/config.py:reproduce",
    axes={"model.spatial_layer": ["sasa", "halo", "conv3x3"], "seed": [0, 1, 2]},  # the costliest first
)
