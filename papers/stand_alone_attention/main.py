"""Trains a ResNet with local self-attention layers and/or stem. Example:

python -m papers.stand_alone_attention.main --config=papers/stand_alone_attention/config.py:smoke
"""

from common import app
from papers.stand_alone_attention import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
