"""Configs for "Unsupervised Pretraining for Sequence to Sequence Learning" (Ramachandran, Liu, Le; EMNLP 2017).

Run:  python -m papers.seq2seq_pretraining.main --config=papers/seq2seq_pretraining/config.py:<variant>
      [--config.ablation=no_pretraining] [--config.train_fraction=0.2]
      (stage 1 trains an English and a German LSTM language model under <pretrained_dir>/seed<seed>/lm_{en,de};
      stage 2 warm-starts the seq2seq model from them, fine-tunes it on translation + both LM objectives, then
      writes validation perplexity and greedy/beam BLEU on validation and test to <workdir>/bleu.json)
      python -m papers.seq2seq_pretraining.reproduce   (every ablation over seeds: papers/seq2seq_pretraining/README.md)
Variants:
  default  En->De on de_en_local (the Ding dictionary's example sentence pairs, English and German monolingual text
           from Debian), joint SentencePiece vocabulary of 1,000, 2-layer LSTMs of 128 units (embeddings 128),
           pairs of up to 24 tokens; each LM 600 steps of 32 sentences (~2 min), the seq2seq model 300 steps of 32
           pairs plus 8 + 8 monolingual sentences (~5 min with evaluation and decoding) on 2 shared CPU cores;
           greedy and beam-4 BLEU on the first 400 sentences of validation and test. The curves in the README show
           how far from a plateau that is.
  converge the default model trained to a plateau: 4,000 fine-tuning steps of 64 pairs (15 epochs), language models
           2,000 steps of 64 sentences; hours per run here (configs/sweeps/seq2seq_pretraining_converge.py).
  smoke    the tiny datasets, 1-layer LSTMs of 16 units, a few steps of each stage: seconds; what the tests run.
  wmt14    the paper's setting for users with tfds wmt14_translate/de-en prepared: 3-layer LSTMs of 1,000 units
           (the paper's sizes were not retrieved; these follow the secondary notes), vocabulary 32,000; days on
           one accelerator, configured, not run here.
Fields:
  ablation        full | no_pretraining | encoder_only | decoder_only | embeddings_only | no_lm_objective (which
                  pretrained weights the seq2seq model starts from; no_lm_objective: full pretraining, lm_weight 0)
  train_fraction  the fraction of the parallel training pairs used (the paper's low-resource point: 0.2)
  lm_weight       weight of (source LM NLL + target LM NLL) on monolingual batches in the fine-tuning loss (paper: 1)
  pretrained_dir  where the language models are trained ('' : <workdir>/pretrained); a sweep shares it
  model.*         embed_dim, hidden_dim, num_layers, dropout, residual_first_layer (the first decoder layer's
                  output added to the top layer's before the softmax), attend_first_layer (attention reads the first
                  and the top encoder layers)
  decode.*        beam_size, length_penalty, max_length (target tokens), batch_size, max_sentences per split
"""

from ml_collections import ConfigDict

from common.registry import lookup
from configs import presets


def _default() -> ConfigDict:
    return ConfigDict(
        {
            "seed": 0,
            "ablation": "full",
            "train_fraction": 1.0,
            "lm_weight": 1.0,
            "pretrained_dir": "",
            "dataset": {
                "name": "de_en_local",
                "source": "en",
                "target": "de",
                "source_lm": "text_local/en",
                "target_lm": "text_local/de",
                "batch_size": 32,
                "lm_batch_size": 8,
                "max_length": 24,
                "vocab_size": 1000,
                "data_dir": None,
            },
            "model": {
                "embed_dim": 128,
                "hidden_dim": 128,
                "num_layers": 2,
                "dropout": 0.1,
                "residual_first_layer": True,
                "attend_first_layer": True,
            },
            "pretrain": {
                "optimizer": {"name": "adam", "learning_rate": 3e-3, "schedule": "cosine", "warmup_steps": 30},
                "train": presets.train_loop(num_steps=600, log_every=20, checkpoint_every=200),
            },
            "optimizer": {"name": "adam", "learning_rate": 3e-3, "schedule": "cosine", "warmup_steps": 30},
            "train": presets.train_loop(num_steps=300, log_every=10, checkpoint_every=100),
            "decode": {
                "beam_size": 4,
                "length_penalty": 0.6,
                "max_length": 32,
                "batch_size": 100,
                "max_sentences": 400,
            },
        }
    )


def _with_eval_every(config: ConfigDict) -> ConfigDict:
    """Validation loss five times per run in each stage unless the variant sets its own: the README's curves."""
    for train in (config.pretrain.train, config.train):
        train.eval_every = train.eval_every or max(train.num_steps // 5, 1)
    return config


def _smoke() -> ConfigDict:
    config = _default()
    config.dataset.update(
        name="de_en_local/tiny",
        source_lm="text_local/en_tiny",
        target_lm="text_local/de_tiny",
        batch_size=4,
        lm_batch_size=4,
        max_length=24,
        vocab_size=500,
    )
    config.model.update(embed_dim=16, hidden_dim=16, num_layers=2, dropout=0.0)
    config.pretrain.optimizer.update(learning_rate=1e-2, warmup_steps=2)
    config.optimizer.update(learning_rate=1e-2, warmup_steps=2)
    config.pretrain.train.update(num_steps=6, log_every=2, checkpoint_every=3, async_checkpoints=False)
    config.train.update(num_steps=6, log_every=2, checkpoint_every=3, async_checkpoints=False)
    config.decode.update(beam_size=2, max_length=10, batch_size=4, max_sentences=6)
    return config


def _converge() -> ConfigDict:
    """The default model trained to a plateau: 15 epochs of the pairs at batch 64 (4,000 steps), language models
    2,000 steps of 64 sentences; hours per run on 2 CPU cores."""
    config = _default()
    config.dataset.update(batch_size=64, lm_batch_size=16)
    # Validation every 250 steps: enough points in the last quarter for the plateau rule (common.results).
    config.pretrain.train.update(num_steps=2000, log_every=50, eval_every=250, checkpoint_every=250)
    config.optimizer.update(learning_rate=2e-3, warmup_steps=100)
    config.train.update(num_steps=4000, log_every=50, eval_every=250, checkpoint_every=250)
    return config


def _wmt14() -> ConfigDict:
    config = _default()
    config.dataset.update(name="wmt14_translate/de-en", batch_size=128, lm_batch_size=128, max_length=64)
    config.dataset.vocab_size = 32000
    config.model.update(embed_dim=1000, hidden_dim=1000, num_layers=3, dropout=0.2)
    config.pretrain.train.update(num_steps=200_000, log_every=200, checkpoint_every=5000)
    config.train.update(num_steps=200_000, log_every=200, checkpoint_every=5000)
    config.decode.update(beam_size=10, max_length=100, batch_size=64, max_sentences=100_000)
    return config


VARIANTS = {"default": _default, "converge": _converge, "smoke": _smoke, "wmt14": _wmt14}


def get_config(variant: str = "default") -> ConfigDict:
    return _with_eval_every(lookup(VARIANTS, variant, "seq2seq_pretraining config variant")())
