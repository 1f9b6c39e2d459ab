"""HaloNet vs stand-alone self-attention vs convolution at CPU scale, over seeds.

Base: papers/halonet/config.py:fashion_comparison (the small HaloNet: CIFAR stem, three stages of one bottleneck
at 28, 14 and 7 px, width 8, b = 4, h = 2, 2/4/4 heads; 300 steps of batch 64 on offline Fashion-MNIST, evaluated
on the 10k test images). The one factor is the spatial layer of every bottleneck: halo attention, SASA's centred
5x5 window (k = 2h + 1, same heads) or a 3x3 convolution; 2 seeds each = 6 runs. Time and speed: the README's
`halonet_comparison` block. The converged comparison is configs/sweeps/halonet_reproduce.py.
"""

from common.sweep import Sweep

SWEEP = Sweep(
    config="papers/halonet/config.py:fashion_comparison",
    axes={"model.spatial_layer": ["halo", "sasa", "conv3x3"], "seed": [0, 1]},
)
