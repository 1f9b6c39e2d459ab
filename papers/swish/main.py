"""Trains a ResNet with a chosen activation. Example:

python -m papers.swish.main --config=papers/swish/config.py:smoke --config.model.activation=gelu
"""

from common import app
from papers.swish import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
