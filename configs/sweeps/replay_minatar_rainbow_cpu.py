"""The ablative half of the replay study's n-step check on MinAtar, at the CPU scale of replay_minatar_cpu.py.

The same cells, games and budget as replay_minatar_cpu.py (capacity x4 at replay ratio 0.25, 125,000 updates a
run), with Dopamine's Rainbow instead of DQN: `agent.n_step` 3 is Rainbow, 1 is Rainbow without n-step returns
(config.py's minatar_rainbow_minus_n_step). The paper finds that Rainbow stops gaining from capacity when its
n-step returns are removed; replay_minatar_cpu.py is the additive half (DQN with and without them). One seed: a
Rainbow run takes about twice a DQN run's time on this CPU (prioritised sampling and priority updates through
Reverb, the C51 head), so its 8 runs take as long as the DQN grid's 16. Add seeds with "seed": [0, 1] (finished
runs are reused).
Run: python -m papers.replay_fundamentals.reproduce --sweep configs/sweeps/replay_minatar_rainbow_cpu.py \
    --max-concurrent 2
"""

import dataclasses

from configs.sweeps import replay_minatar_cpu

SWEEP = dataclasses.replace(
    replay_minatar_cpu.SWEEP,
    config="papers/replay_fundamentals/config.py:minatar_rainbow",
    axes={**replay_minatar_cpu.SWEEP.axes, "seed": [0]},
)
BASELINE = replay_minatar_cpu.BASELINE
GAME_KEY = replay_minatar_cpu.GAME_KEY
AGENT_KEY = replay_minatar_cpu.AGENT_KEY
