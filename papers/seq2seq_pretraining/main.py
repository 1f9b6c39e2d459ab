"""Pretrains an English and a German language model, warm-starts and fine-tunes the En->De seq2seq model from
them, then scores greedy and beam BLEU. A rerun resumes whichever stage was interrupted. Example:

python -m papers.seq2seq_pretraining.main --config=papers/seq2seq_pretraining/config.py:smoke
"""

from common import app
from papers.seq2seq_pretraining import train

app.define_flags(__file__)

if __name__ == "__main__":
    app.run(app.main_for(train))
