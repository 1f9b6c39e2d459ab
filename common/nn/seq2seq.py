"""LSTM sequence-to-sequence model with Luong attention, built to be warm-started from two LSTM language models
(Ramachandran et al. 2017, "Unsupervised pretraining for sequence to sequence learning").

Source and target share one vocabulary; id 0 is padding, at the end of a row.

Encoder: embed -> layers[0..n-1] (unidirectional LSTMs: layers[0] is exactly a language model's first layer).
Decoder: embed -> layers[0] (reads the embedding only: exactly the target LM's first layer) -> layers[1..n-1] ->
  Luong "general" attention from the top decoder state h_t [B, H] over the encoder memory:
      score_s = (W_a h_t) . m_s,  a = softmax over unpadded s,  context = sum_s a_s m_s,
      out_t = tanh(W_c [context; h_t])                       (Luong et al. 2015, eq. 5; no input feeding)
  -> (+ layers[0]'s output, if residual_first_layer) -> dropout -> softmax.
  Without input feeding, decoder states do not depend on earlier attention, so teacher forcing runs every layer
  as one scan and attends for all steps at once. Every layer starts from a zero state, as the language models did;
  the source reaches the decoder through attention only.
The paper's two additions, each a constructor flag:
  residual_first_layer  the first decoder layer's output is added to the attention output before the softmax,
                        a path around the randomly initialised upper layers.
  attend_first_layer    the memory holds the first and the top encoder layers' outputs, concatenated along
                        time ([B, 2S, H]): one softmax over both, so the decoder can read either layer.
The two language-model heads of the multitask fine-tuning loss reuse the pretrained parts:
  source_lm_logits  encoder.embed -> encoder.layers[0] -> encoder.lm_softmax
  target_lm_logits  decoder.embed -> decoder.layers[0] -> decoder.softmax
Warm start from `LSTMLanguageModel` checkpoints (common/train/checkpoint.py `warm_start`) is a path mapping:
  SOURCE_LM_MAPPING  embed->encoder/embed, layers/0->encoder/layers/0, softmax->encoder/lm_softmax
  TARGET_LM_MAPPING  embed->decoder/embed, layers/0->decoder/layers/0, softmax->decoder/softmax
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from common.compat import List
from common.nn import beam_search as search
from common.nn.lstm import PAD_ID, LSTMCarry, make_layers

SOURCE_LM_MAPPING = "embed->encoder/embed,layers/0->encoder/layers/0,softmax->encoder/lm_softmax"
TARGET_LM_MAPPING = "embed->decoder/embed,layers/0->decoder/layers/0,softmax->decoder/softmax"

NEG_INF = -1e9  # attention score of a padded source position


class Memory(NamedTuple):
    """What decoding needs from the encoder: values [B, S', H] (S' = S, or 2S with attend_first_layer) and
    mask bool [B, S'] (False: padding)."""

    values: jax.Array
    mask: jax.Array


class Encoder(nnx.Module):
    def __init__(self, vocab_size, embed_dim, hidden_dim, num_layers, dropout, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        self.layers = List(make_layers(embed_dim, hidden_dim, num_layers, rngs=rngs))
        self.lm_softmax = nnx.Linear(hidden_dim, vocab_size, rngs=rngs)  # the source LM head only
        self.dropout = nnx.Dropout(dropout)  # keys come per call: a stored key is state Orbax cannot save

    def __call__(self, source, *, deterministic=True, rngs=None) -> list[jax.Array]:
        """source int [B, S] -> every layer's outputs, each [B, S, H]."""
        x = self.embed(source.astype(jnp.int32))
        outputs = []
        for layer in self.layers:
            x, _ = layer(self.dropout(x, deterministic=deterministic, rngs=rngs))
            outputs.append(x)
        return outputs


class Decoder(nnx.Module):
    def __init__(self, vocab_size, embed_dim, hidden_dim, num_layers, dropout, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        self.layers = List(make_layers(embed_dim, hidden_dim, num_layers, rngs=rngs))
        self.attention_query = nnx.Linear(hidden_dim, hidden_dim, use_bias=False, rngs=rngs)  # Luong's W_a
        self.attention_combine = nnx.Linear(2 * hidden_dim, hidden_dim, use_bias=False, rngs=rngs)  # Luong's W_c
        self.softmax = nnx.Linear(hidden_dim, vocab_size, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)  # keys come per call: a stored key is state Orbax cannot save

    def attend(self, memory: Memory, top: jax.Array) -> jax.Array:
        """top decoder states [B, T, H] -> attention outputs tanh(W_c [context; h]) [B, T, H]."""
        scores = jnp.einsum("bth,bsh->bts", self.attention_query(top), memory.values)
        scores = jnp.where(memory.mask[:, None, :], scores, NEG_INF)
        context = jnp.einsum("bts,bsh->bth", jax.nn.softmax(scores, axis=-1), memory.values)
        return jnp.tanh(self.attention_combine(jnp.concatenate([context, top], axis=-1)))


class Seq2Seq(nnx.Module):
    """source int [B, S], target_inputs int [B, T] (bos + target[:-1]) -> logits float32 [B, T, V]."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        *,
        residual_first_layer: bool,
        attend_first_layer: bool,
        rngs: nnx.Rngs,
    ):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.residual_first_layer = residual_first_layer
        self.attend_first_layer = attend_first_layer
        self.encoder = Encoder(vocab_size, embed_dim, hidden_dim, num_layers, dropout, rngs=rngs)
        self.decoder = Decoder(vocab_size, embed_dim, hidden_dim, num_layers, dropout, rngs=rngs)

    def encode(self, source: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None) -> Memory:
        """source int [B, S] -> Memory (values [B, S', H], mask [B, S'])."""
        if source.ndim != 2:
            raise ValueError(f"source must be int [batch, length], got shape {source.shape}")
        outputs = self.encoder(source, deterministic=deterministic, rngs=rngs)
        mask = source != PAD_ID
        if self.attend_first_layer:
            return Memory(jnp.concatenate([outputs[0], outputs[-1]], axis=1), jnp.concatenate([mask, mask], axis=1))
        return Memory(outputs[-1], mask)

    def _logits(self, attended: jax.Array, first: jax.Array, deterministic: bool, rngs) -> jax.Array:
        """attention outputs and first decoder layer outputs [..., H] -> logits float32 [..., V]."""
        if self.residual_first_layer:
            attended = attended + first
        attended = self.decoder.dropout(attended, deterministic=deterministic, rngs=rngs)
        return self.decoder.softmax(attended).astype(jnp.float32)

    def __call__(
        self,
        source: jax.Array,
        target_inputs: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Teacher forcing: logits [B, T, V]; position t predicts the target token after target_inputs[:, t]."""
        if target_inputs.ndim != 2:
            raise ValueError(f"target_inputs must be int [batch, length], got shape {target_inputs.shape}")
        memory = self.encode(source, deterministic=deterministic, rngs=rngs)
        decoder = self.decoder
        x = decoder.embed(target_inputs.astype(jnp.int32))
        outputs = []
        for layer in decoder.layers:
            x, _ = layer(decoder.dropout(x, deterministic=deterministic, rngs=rngs))
            outputs.append(x)
        return self._logits(decoder.attend(memory, outputs[-1]), outputs[0], deterministic, rngs)

    def init_decode_carry(self, memory: Memory) -> tuple[LSTMCarry, ...]:
        """Zero states of every decoder layer, batch taken from the memory ([B, H] each)."""
        batch = memory.values.shape[0]
        return tuple(layer.initial_carry(batch, memory.values.dtype) for layer in self.decoder.layers)

    def decode_step(
        self, memory: Memory, carry: tuple[LSTMCarry, ...], token: jax.Array
    ) -> tuple[tuple[LSTMCarry, ...], jax.Array]:
        """One decoding step without dropout: token int [B] -> (next carry, logits float32 [B, V])."""
        decoder = self.decoder
        x = decoder.embed(token.astype(jnp.int32))
        new_carry = []
        for layer, layer_carry in zip(decoder.layers, carry, strict=True):
            layer_carry = layer.step(layer_carry, x)
            new_carry.append(layer_carry)
            x = layer_carry.hidden
        attended = decoder.attend(memory, x[:, None, :])[:, 0]
        return tuple(new_carry), self._logits(attended, new_carry[0].hidden, True, None)

    def _lm_logits(self, part, softmax, tokens, deterministic, rngs) -> jax.Array:
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be int [batch, length], got shape {tokens.shape}")
        x = part.dropout(part.embed(tokens.astype(jnp.int32)), deterministic=deterministic, rngs=rngs)
        x, _ = part.layers[0](x)
        return softmax(part.dropout(x, deterministic=deterministic, rngs=rngs)).astype(jnp.float32)

    def source_lm_logits(self, tokens: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
        """Source language model head: tokens int [B, L] -> next-token logits [B, L, V]."""
        return self._lm_logits(self.encoder, self.encoder.lm_softmax, tokens, deterministic, rngs)

    def target_lm_logits(self, tokens: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
        """Target language model head: tokens int [B, L] -> next-token logits [B, L, V]."""
        return self._lm_logits(self.decoder, self.decoder.softmax, tokens, deterministic, rngs)


def generate(
    model: Seq2Seq,
    source: jax.Array,
    *,
    max_length: int,
    bos_id: int,
    eos_id: int,
    beam_size: int = 1,
    length_penalty: float = 0.6,
) -> tuple[jax.Array, jax.Array]:
    """Translations of source int [B, S]: beam_size 1 -> greedy (tokens [B, max_length], log-probs [B]);
    else beam search (tokens [B, K, max_length], scores [B, K], best first). Padding never gets generated.
    Wrap in nnx.jit (static: max_length, bos_id, eos_id, beam_size, length_penalty) to compile it."""
    memory = model.encode(source)
    batch = source.shape[0]

    def step_fn(memory):
        def step(carry, token):
            carry, logits = model.decode_step(memory, carry, token)
            return carry, logits.at[:, PAD_ID].set(-jnp.inf)

        return step

    if beam_size == 1:
        return search.greedy_decode(
            step_fn(memory), model.init_decode_carry(memory), max_length=max_length, bos_id=bos_id, eos_id=eos_id
        )
    memory = search.tile_for_beams(memory, beam_size)
    return search.beam_search(
        step_fn(memory),
        model.init_decode_carry(memory),
        batch_size=batch,
        beam_size=beam_size,
        max_length=max_length,
        bos_id=bos_id,
        eos_id=eos_id,
        length_penalty=length_penalty,
    )
