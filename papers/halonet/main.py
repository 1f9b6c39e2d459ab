"""Trains a HaloNet: a ResNet whose spatial layers are blocked local attention with halos. Example:

python -m papers.halonet.main --config=papers/halonet/config.py:smoke
"""

from common import app
from papers.halonet import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
