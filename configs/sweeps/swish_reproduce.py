"""The Swish paper's benchmark trained to a plateau: every activation of the paper's table, three seeds each, on
papers/swish/config.py:reproduce (resnet_tiny, 500 steps of batch 128 on offline Fashion-MNIST, test accuracy
every 50 steps). Estimated from the config's measured cost per run (about 300 s on one core): 27 runs in about
70 min on 2 CPU cores as two 1-core trials at a time on Ray. The default sweep of `python -m papers.swish.reproduce`
(add `--max-concurrent 2` for Ray).
"""

from common.sweep import Sweep
from configs.sweeps import swish_activations

SWEEP = Sweep(config="papers/swish/config.py:reproduce", axes=swish_activations.SWEEP.axes)
