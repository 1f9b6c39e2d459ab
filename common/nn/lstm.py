"""LSTM layers and an LSTM language model (Flax nnx).

One layer: gates = input_proj(x_t) + hidden_proj(h_{t-1}), split [i, f, g, o] (each [B, H]);
  c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t).
The forget-gate bias starts at 1 (Gers et al. 2000; Jozefowicz et al. 2015), so early training keeps memory.
The input projection of a whole sequence is one matmul before the scan; only hidden_proj runs inside
`jax.lax.scan`, which is also what a single `step` computes, so step-by-step decoding matches the scan.

Layers are kept as a plain list on the owning module (`layers[0]` is the first layer), so parameter paths read
`layers/0/input_proj/kernel`: a language model's first layer can be copied into a seq2seq encoder or decoder by a
path mapping (common/train/checkpoint.py `warm_start`).

Padding (id 0) is expected at the end of a row: everything is causal (left to right), so trailing padding cannot
change any earlier output; callers mask the loss. `mask` in `LSTMLayer.__call__` also freezes the carry over
padded steps, so the final carry is the state after each row's last real token.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from common.compat import List

PAD_ID = 0  # the text pipeline's padding id (common/data/text.py)


class LSTMCarry(NamedTuple):
    """The recurrent state of one layer: hidden and cell, each [B, H]."""

    hidden: jax.Array
    cell: jax.Array


def _forget_bias_one(hidden_features: int):
    """Bias initialiser for the [i, f, g, o] gate layout: 1 on the forget gate, 0 elsewhere."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[hidden_features : 2 * hidden_features].set(1.0)

    return init


class LSTMLayer(nnx.Module):
    """One unidirectional LSTM layer: inputs [B, L, D] -> outputs [B, L, H] (and the final carry)."""

    def __init__(self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs):
        self.hidden_features = hidden_features
        gates = 4 * hidden_features
        self.input_proj = nnx.Linear(in_features, gates, bias_init=_forget_bias_one(hidden_features), rngs=rngs)
        self.hidden_proj = nnx.Linear(
            hidden_features, gates, use_bias=False, kernel_init=nnx.initializers.orthogonal(), rngs=rngs
        )

    def initial_carry(self, batch_size: int, dtype=jnp.float32) -> LSTMCarry:
        zeros = jnp.zeros((batch_size, self.hidden_features), dtype)
        return LSTMCarry(zeros, zeros)

    def _cell(self, carry: LSTMCarry, projected_input: jax.Array) -> LSTMCarry:
        """projected_input [B, 4H] (input_proj already applied) -> the next carry."""
        gates = projected_input + self.hidden_proj(carry.hidden)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        cell = jax.nn.sigmoid(f) * carry.cell + jax.nn.sigmoid(i) * jnp.tanh(g)
        return LSTMCarry(jax.nn.sigmoid(o) * jnp.tanh(cell), cell)

    def step(self, carry: LSTMCarry, inputs: jax.Array) -> LSTMCarry:
        """One time step: inputs [B, D] -> the next carry (its `hidden` [B, H] is the output)."""
        return self._cell(carry, self.input_proj(inputs))

    def __call__(
        self, inputs: jax.Array, carry: LSTMCarry | None = None, mask: jax.Array | None = None
    ) -> tuple[jax.Array, LSTMCarry]:
        """inputs [B, L, D], carry (default zeros), mask bool [B, L] or None (False: keep the carry unchanged)
        -> (outputs [B, L, H], final carry)."""
        batch, length = inputs.shape[:2]
        carry = self.initial_carry(batch, inputs.dtype) if carry is None else carry
        projected = jnp.swapaxes(self.input_proj(inputs), 0, 1)  # [L, B, 4H]
        keep = jnp.ones((length, batch), bool) if mask is None else jnp.swapaxes(mask, 0, 1).astype(bool)

        def scan_step(carry, inputs):
            projected_t, keep_t = inputs
            new = self._cell(carry, projected_t)
            new = jax.tree_util.tree_map(lambda n, old: jnp.where(keep_t[:, None], n, old), new, carry)
            return new, new.hidden

        carry, outputs = jax.lax.scan(scan_step, carry, (projected, keep))
        return jnp.swapaxes(outputs, 0, 1), carry


def make_layers(in_features: int, hidden_features: int, num_layers: int, *, rngs: nnx.Rngs) -> list[LSTMLayer]:
    """A stack: the first layer reads `in_features`, the others the layer below ([B, L, H])."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    return [
        LSTMLayer(in_features if i == 0 else hidden_features, hidden_features, rngs=rngs) for i in range(num_layers)
    ]


class LSTMLanguageModel(nnx.Module):
    """Next-token logits: tokens int [B, L] -> logits float32 [B, L, V] (position t predicts token t + 1).

    embed -> dropout -> layers[0] -> dropout -> ... -> layers[-1] -> dropout -> softmax (a Linear H -> V).
    Dropout is on the non-recurrent connections only (Zaremba et al. 2014). The softmax is not tied to the
    embedding: a seq2seq warm start copies each of them on its own (`embed`, `layers/0`, `softmax`), which works
    whatever embed_dim and hidden_dim are.
    """

    def __init__(
        self, vocab_size: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float, *, rngs: nnx.Rngs
    ):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        self.layers = List(make_layers(embed_dim, hidden_dim, num_layers, rngs=rngs))
        self.softmax = nnx.Linear(hidden_dim, vocab_size, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)  # keys come per call: a stored key is state Orbax cannot save

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None) -> jax.Array:
        """tokens int [B, L] -> logits float32 [B, L, V]. rngs: dropout keys for this call (default: the ones
        given at construction), only read when deterministic=False."""
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be int [batch, length], got shape {tokens.shape}")
        x = self.embed(tokens.astype(jnp.int32))
        for layer in self.layers:
            x, _ = layer(self.dropout(x, deterministic=deterministic, rngs=rngs))
        return self.softmax(self.dropout(x, deterministic=deterministic, rngs=rngs)).astype(jnp.float32)
