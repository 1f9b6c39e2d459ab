"""Trains n policy particles with Stein variational policy gradient (or the independent / joint baselines). Example:

python -m papers.svpg.main --config=papers/svpg/config.py:smoke --config.svpg.method=independent
"""

from common import app
from papers.svpg import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
