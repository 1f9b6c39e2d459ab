"""Seq2seq pretraining: training tokens/s of the multitask step and decoding sentences/s (greedy, beam 4) of the
default config's model, on real de_en_local batches (papers/seq2seq_pretraining/bench.py).

python -m benchmarks.run_all --only seq2seq_pretraining
"""

from common import report
from papers.seq2seq_pretraining import bench


def markdown() -> str:
    row = bench.measure("default", steps=20, sentences=200)
    table = report.markdown_table(
        ["model", "train tokens/s", "train steps/s", "greedy sentences/s", "beam-4 sentences/s"],
        [
            [
                f"{row['num_layers']} x LSTM {row['hidden_dim']}, vocabulary {row['vocab_size']}, batch "
                f"{row['batch_size']}",
                f"{row['train_tokens_per_s']:.0f}",
                f"{row['train_steps_per_s']:.2f}",
                f"{row['greedy_sentences_per_s']:.1f}",
                f"{row['beam4_sentences_per_s']:.1f}",
            ]
        ],
    )
    return (
        "Training counts the real target and monolingual tokens of the step (translation + both LM objectives); "
        "decoding runs every sentence to its end or to decode.max_length, compiled first (an untrained model rarely "
        f"stops early: the worst case).\n\n{table}\n\nMeasured on {row['machine']}."
    )
