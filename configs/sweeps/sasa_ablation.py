"""The stand-alone self-attention ablations at CPU scale: spatial extent, positional encoding, attention placement.

Base: papers/stand_alone_attention/config.py:fashion_ablation (bottleneck ResNet, CIFAR stem, 3 stages of one
block, width 8, 2 heads, attention with the 3x3 convs kept in the other stages; 250 steps of batch 64 on offline
Fashion-MNIST, evaluated on the 10k test images). Grid: k in {3, 5, 7} x positional in {none, absolute, relative}
x attention in the first stage only ("early", 28x28 maps) or the last stage only ("late", 14x14 maps, pooled to
7x7), 3x3 convs in the other stages, x 2 seeds = 36 runs.

Time: measured on the 2 cores while another job loaded them (load average ~3), the costliest point (early,
k = 7) trained at 1.8 steps/s plus ~40 s per run of start-up, compilation and the 10k-image test evaluation,
so about 3 min; late points train at over twice that speed. That puts the 36 runs at roughly 70-80 min on shared
cores and an estimated 40-60 min on 2 idle cores, i.e. about an hour. Run it with
`python -m papers.stand_alone_attention.reproduce`.
"""

from common.sweep import Sweep

SWEEP = Sweep(
    config="papers/stand_alone_attention/config.py:fashion_ablation",
    axes={
        "model.kernel_size": [3, 5, 7],
        "model.positional": ["none", "absolute", "relative"],
        "model.attention_stages": ["early", "late"],
        "seed": [0, 1],
    },
)
