"""Trains a DQN-family agent on a Reverb replay table. Example:

python -m papers.replay_fundamentals.main --config=papers/replay_fundamentals/config.py:smoke
"""

from common import app
from papers.replay_fundamentals import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
