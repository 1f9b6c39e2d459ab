"""Trains a WaveNet on speech, then generates audio with the naive and the cached generator. Example:

python -m papers.fast_wavenet.main --config=papers/fast_wavenet/config.py:smoke
"""

from common import app
from papers.fast_wavenet import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
