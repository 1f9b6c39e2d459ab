"""Seq2seq pretraining at CPU scale (papers/seq2seq_pretraining/README.md): every ablation of the paper's Table 3
over 2 seeds on all the parallel pairs, then full vs no pretraining on 20% of them (the paper's Figure 3 point).
The language models are trained once per seed (under <workdir>/pretrained) and shared by every run of that seed.
Run: python -m papers.seq2seq_pretraining.reproduce
"""

from common.sweep import Sweep

CONFIG = "papers/seq2seq_pretraining/config.py"
ABLATIONS = ["full", "no_pretraining", "encoder_only", "decoder_only", "embeddings_only", "no_lm_objective"]
SEEDS = [0, 1]

SWEEP = Sweep(config=CONFIG, axes={"seed": SEEDS, "ablation": ABLATIONS})
SWEEPS = [
    SWEEP,
    Sweep(config=CONFIG, axes={"seed": SEEDS, "train_fraction": [0.2], "ablation": ["full", "no_pretraining"]}),
]
