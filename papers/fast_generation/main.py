"""Trains a PixelCNN++, reports bits per dimension, then generates a sample grid. Example:

python -m papers.fast_generation.main --config=papers/fast_generation/config.py:smoke
"""

from common import app
from papers.fast_generation import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
