"""Trains the paper's small network with conv / LRLC / LC / wide conv layers. Example:

python -m papers.low_rank_local.main --config=papers/low_rank_local/config.py:smoke --config.model.layer=lc
"""

from common import app
from papers.low_rank_local import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
