"""The LRLC rank table trained to a plateau: LRLC at K in {1, 2, 4, 8, 16}, conv, dense LC and the wide conv
matched to K = 4, three seeds each (24 runs), on papers/low_rank_local/config.py:reproduce (width 8, 600 steps of
batch 128 on offline Fashion-MNIST, test accuracy every 50 steps). Estimated from the config's measured step
costs: about 40 min on 2 CPU cores as two 1-core trials at a time on Ray. The default sweep of
`python -m papers.low_rank_local.reproduce` (add `--max-concurrent 2` for Ray).
"""

from common.sweep import Sweep
from configs.sweeps import lrlc_rank

CONFIG = "papers/low_rank_local/config.py:reproduce"

SWEEP = Sweep(config=CONFIG, axes=lrlc_rank.SWEEP.axes)
BASELINES = Sweep(config=CONFIG, axes=lrlc_rank.BASELINES.axes)
SWEEPS = [BASELINES, SWEEP]
