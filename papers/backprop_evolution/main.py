"""Trains a network whose backward pass follows a chosen equation. Example:

python -m papers.backprop_evolution.main --config=papers/backprop_evolution/config.py:smoke
python -m papers.backprop_evolution.main --config=papers/backprop_evolution/config.py --config.model.rule=rule:...
"""

from common import app
from papers.backprop_evolution import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
