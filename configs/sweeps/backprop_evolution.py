"""Backprop evolution's re-training: backprop and the search's best equations, three seeds, a short, a long and a
converged budget (300, 1,500 and 8,000 steps, each its own cosine schedule), on the search's MLP and offline
Fashion-MNIST.

The equations are from the search of papers/backprop_evolution/README.md (`search` block): its third and fifth.
Its first two, dact * g / (|dact| + eps) and dact * g / (|dact^2| + eps), are backprop to a factor 1 / (1 + 1e-6)
for a ReLU network (dact is 0 or 1), so re-training them would measure backprop again.
Run with `make reproduce-backprop-evolution` (python -m papers.backprop_evolution.reproduce).
"""

from common.sweep import Sweep

RULES = [
    "backprop",
    "rule:mul.0.x.3.tanh+left.7.x.0.clip",  # g * tanh(dact)
    "rule:min.0.x.5.tanh+left.7.x.0.signed_sqrt",  # min(g, tanh(w_rms))
]
SEEDS = [0, 1, 2]

SWEEPS = [
    Sweep(
        config="papers/backprop_evolution/config.py",
        axes={"model.rule": RULES, "train.num_steps": [300], "seed": SEEDS},
    ),
    Sweep(
        config="papers/backprop_evolution/config.py:long",
        axes={"model.rule": RULES, "train.num_steps": [1500], "seed": SEEDS},
    ),
    Sweep(
        config="papers/backprop_evolution/config.py:converge",
        axes={"model.rule": RULES, "train.num_steps": [8000], "seed": SEEDS},
    ),
]
SWEEP = SWEEPS[0]
