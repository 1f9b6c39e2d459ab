"""Seq2seq pretraining trained to a plateau: the sweeps of configs/sweeps/seq2seq_pretraining.py (same axes, same
order of importance) on the `converge` variant (15 epochs of the pairs). Hours per run on 2 CPU cores; finished runs
are only re-read, so an interrupted reproduction resumes.
Run: python -m papers.seq2seq_pretraining.reproduce --sweep configs/sweeps/seq2seq_pretraining_converge.py
"""

import dataclasses

from configs.sweeps import seq2seq_pretraining

CONFIG = "papers/seq2seq_pretraining/config.py:converge"
SWEEPS = [dataclasses.replace(sweep, config=CONFIG) for sweep in seq2seq_pretraining.SWEEPS]
SWEEP = SWEEPS[0]
