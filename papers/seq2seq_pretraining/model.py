"""The paper's models, wired from common/nn: an LSTM language model per language and the LSTM seq2seq model whose
encoder and decoder bottoms have the same shapes as the language models, so the LMs' weights copy into them.

Seq2seq parameter paths the warm start writes (see train.ABLATIONS): encoder/embed, encoder/layers/0 and
encoder/lm_softmax (the source LM's softmax, kept for the source LM objective); decoder/embed, decoder/layers/0 and
decoder/softmax (shared by translation and the target LM objective).
"""

import jax.numpy as jnp
from flax import nnx
from ml_collections import ConfigDict

from common.nn import lstm, seq2seq


def build_language_model(config: ConfigDict, vocab_size: int, rngs: nnx.Rngs) -> lstm.LSTMLanguageModel:
    m = config.model
    lm = lstm.LSTMLanguageModel(vocab_size, m.embed_dim, m.hidden_dim, m.num_layers, m.dropout, rngs=rngs)
    return lm


def build_seq2seq(config: ConfigDict, vocab_size: int, rngs: nnx.Rngs) -> seq2seq.Seq2Seq:
    m = config.model
    model = seq2seq.Seq2Seq(
        vocab_size,
        m.embed_dim,
        m.hidden_dim,
        m.num_layers,
        m.dropout,
        residual_first_layer=m.residual_first_layer,
        attend_first_layer=m.attend_first_layer,
        rngs=rngs,
    )
    return model


class TranslationOnSource(nnx.Module):
    """A seq2seq model fed its own source as the target prefix: one input [B, T] for the FLOP count of --dry_run."""

    def __init__(self, model: seq2seq.Seq2Seq):
        self.model = model

    def __call__(self, tokens):
        tokens = tokens.astype(jnp.int32)
        return self.model(tokens, tokens, deterministic=True)
