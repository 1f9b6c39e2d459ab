"""The Swish paper's benchmark, at CPU scale: every activation of the paper's table, three seeds each.

ResNet-20 on offline Fashion-MNIST, 600 steps a run (papers/swish/config.py:benchmark). Run with
`make reproduce-swish` (python -m papers.swish.reproduce).
"""

from common.sweep import Sweep

SWEEP = Sweep(
    config="papers/swish/config.py:benchmark",
    axes={
        "model.activation": ["relu", "lrelu", "prelu", "softplus", "elu", "selu", "gelu", "swish", "swish1"],
        "seed": [0, 1, 2],
    },
)
