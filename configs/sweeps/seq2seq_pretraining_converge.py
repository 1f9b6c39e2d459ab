"""Seq2seq pretraining trained to a plateau: the main comparison of configs/sweeps/seq2seq_pretraining.py (full vs
no pretraining over 2 seeds) on the `converge` variant (15 epochs of the pairs). On 2 shared CPU cores as two
1-core Ray trials at a time the four runs took 109 min (37-71 min a run; the full runs train the language models
too); the other ablations stay at the fast scale. Finished runs are only re-read, so an interrupted reproduction
resumes.
Run: python -m papers.seq2seq_pretraining.reproduce --sweep configs/sweeps/seq2seq_pretraining_converge.py
     --max-concurrent 2
"""

import dataclasses

from configs.sweeps import seq2seq_pretraining

CONFIG = "papers/seq2seq_pretraining/config.py:converge"
SWEEP = dataclasses.replace(seq2seq_pretraining.SWEEP, config=CONFIG)
SWEEPS = [SWEEP]
