"""Seq2seq pretraining trained to a plateau (the `converge` variant, 15 epochs of the pairs), in order of
importance: full vs no pretraining over 2 seeds, then the other ablations and the 20% point on seed 0. Hours per
run on 2 CPU cores; finished runs are only re-read, so an interrupted reproduction resumes.
Run: python -m papers.seq2seq_pretraining.reproduce --sweep configs/sweeps/seq2seq_pretraining_converge.py
"""

from common.sweep import Sweep

CONFIG = "papers/seq2seq_pretraining/config.py:converge"
MAIN = ["full", "no_pretraining"]
OTHER_ABLATIONS = ["decoder_only", "encoder_only", "embeddings_only", "no_lm_objective"]

SWEEP = Sweep(config=CONFIG, axes={"seed": [0, 1], "ablation": MAIN})
SWEEPS = [
    SWEEP,
    Sweep(config=CONFIG, axes={"seed": [0], "ablation": OTHER_ABLATIONS}),
    Sweep(config=CONFIG, axes={"seed": [0], "train_fraction": [0.2], "ablation": MAIN}),
]
