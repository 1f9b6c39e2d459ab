"""Seq2seq pretraining at CPU scale (papers/seq2seq_pretraining/README.md), in order of importance: full vs no
pretraining over 2 seeds; the other ablations of the paper's Table 3 (seed 0); full vs no pretraining on 20% of the
pairs (seed 0, the paper's Figure 3 point). The language models are trained once per seed (under
<workdir>/pretrained) and shared by every run of that seed. About 45 min on 2 shared CPU cores; more seeds are one
more value on an axis (finished runs are only re-read).
Run: python -m papers.seq2seq_pretraining.reproduce
"""

from common.sweep import Sweep

CONFIG = "papers/seq2seq_pretraining/config.py"
MAIN = ["full", "no_pretraining"]
OTHER_ABLATIONS = ["encoder_only", "decoder_only", "embeddings_only", "no_lm_objective"]

SWEEP = Sweep(config=CONFIG, axes={"seed": [0, 1], "ablation": MAIN})
SWEEPS = [
    SWEEP,
    Sweep(config=CONFIG, axes={"seed": [0], "ablation": OTHER_ABLATIONS}),
    Sweep(config=CONFIG, axes={"seed": [0], "train_fraction": [0.2], "ablation": MAIN}),
]
