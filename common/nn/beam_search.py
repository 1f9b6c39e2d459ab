"""Greedy decoding and beam search over any step function, compiled as one `lax.while_loop` (jittable).

step_fn(carry, token int [N]) -> (carry, logits or log-probs [N, V]); log_softmax is applied to its output,
so either form works. The carry is any pytree whose leaves have a leading batch dim N: N = B for greedy decoding,
N = B * K for beam search, flattened batch-major (row b * K + k is beam k of example b; `tile_for_beams` builds
it from a [B, ...] tree). Whatever the step function reads besides the carry (an encoder memory) is closed over,
tiled the same way.

A hypothesis is y_1..y_n with y_n = eos and n <= max_length, or n = max_length without eos; eos counts in n.
Beam search ranks hypotheses by the GNMT score (Wu et al. 2016) log P(y) / ((5 + n) / 6) ** length_penalty.
It keeps K alive beams (ranked by log-probability) and the K best finished hypotheses: at each step the 2K best
extensions hold at least K that do not end in eos (each beam has one eos extension), so the alive set stays full.
It stops when no alive beam can still beat the worst kept finished one (log-probabilities only fall, and the
normaliser grows with n, so an alive beam's best possible score is its log-prob / normaliser(max_length)), or at
max_length. With beam_size 1 and length_penalty 0 it returns the greedy result.
Tokens after a hypothesis ends are pad_id.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

DEAD = -1e9  # log-probability of an empty slot (a beam that does not exist yet); finite, so no inf - inf

StepFn = Callable[[object, jax.Array], tuple[object, jax.Array]]


def length_normalizer(length, length_penalty: float):
    """GNMT's lp(n) = ((5 + n) / 6) ** alpha; 1 at n = 1."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** length_penalty


def tile_for_beams(tree, beam_size: int):
    """Every leaf [B, ...] -> [B * K, ...], each example repeated K times (row b * K + k)."""
    return jax.tree_util.tree_map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def _batch_of(tree) -> int:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("init_carry has no arrays: pass batch_size")
    return leaves[0].shape[0]


def _check(max_length: int, beam_size: int = 1, length_penalty: float = 0.0) -> None:
    if length_penalty < 0:  # the early stop needs a normaliser that grows with length
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")


def greedy_decode(
    step_fn: StepFn,
    init_carry,
    *,
    max_length: int,
    bos_id: int,
    eos_id: int,
    pad_id: int = 0,
    batch_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The most likely token at every step -> (tokens int32 [B, max_length], log P(tokens) float32 [B])."""
    _check(max_length)
    batch = _batch_of(init_carry) if batch_size is None else batch_size

    def body(state):
        step, carry, last, tokens, log_prob, finished = state
        carry, logits = step_fn(carry, last)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
        chosen = jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]
        log_prob = log_prob + jnp.where(finished, 0.0, chosen)
        tokens = tokens.at[:, step].set(jnp.where(finished, pad_id, token))
        return step + 1, carry, token, tokens, log_prob, finished | (token == eos_id)

    def cond(state):
        step, *_, finished = state
        return (step < max_length) & ~jnp.all(finished)

    state = (
        jnp.int32(0),
        init_carry,
        jnp.full((batch,), bos_id, jnp.int32),
        jnp.full((batch, max_length), pad_id, jnp.int32),
        jnp.zeros((batch,), jnp.float32),
        jnp.zeros((batch,), bool),
    )
    _, _, _, tokens, log_prob, _ = jax.lax.while_loop(cond, body, state)
    return tokens, log_prob


def beam_search(
    step_fn: StepFn,
    init_carry,
    *,
    batch_size: int,
    beam_size: int,
    max_length: int,
    bos_id: int,
    eos_id: int,
    length_penalty: float = 0.6,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """-> (tokens int32 [B, K, max_length], scores float32 [B, K]), best first. init_carry: leaves [B * K, ...]
    (see `tile_for_beams`). Slots with no hypothesis (fewer than K exist) score about DEAD."""
    _check(max_length, beam_size, length_penalty)
    batch, beams = batch_size, beam_size
    final_normalizer = length_normalizer(max_length, length_penalty)
    first_beam_only = jnp.where(jnp.arange(beams) == 0, 0.0, DEAD)  # all beams start equal: keep one

    def body(state):
        step, carry, last, alive_seq, alive_logp, fin_seq, fin_score = state
        carry, logits = step_fn(carry, last)
        vocab = logits.shape[-1]
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(batch, beams, vocab)
        candidates = (alive_logp[..., None] + log_probs).reshape(batch, beams * vocab)
        top_logp, top_index = jax.lax.top_k(candidates, min(2 * beams, beams * vocab))  # [B, C]
        parent, token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
        seq = jnp.take_along_axis(alive_seq, parent[..., None], axis=1).at[:, :, step].set(token)  # [B, C, L]
        real = top_logp > DEAD / 2
        ends = (token == eos_id) | (step == max_length - 1)
        ended_score = jnp.where(ends & real, top_logp / length_normalizer(step + 1, length_penalty), DEAD)
        fin_score, keep = jax.lax.top_k(jnp.concatenate([fin_score, ended_score], axis=1), beams)
        fin_seq = jnp.take_along_axis(jnp.concatenate([fin_seq, seq], axis=1), keep[..., None], axis=1)
        alive_logp, keep = jax.lax.top_k(jnp.where(token == eos_id, DEAD, top_logp), beams)
        alive_seq = jnp.take_along_axis(seq, keep[..., None], axis=1)
        rows = (jnp.arange(batch)[:, None] * beams + jnp.take_along_axis(parent, keep, axis=1)).reshape(-1)
        carry = jax.tree_util.tree_map(lambda x: x[rows], carry)
        last = jnp.take_along_axis(token, keep, axis=1).reshape(-1)
        return step + 1, carry, last, alive_seq, alive_logp, fin_seq, fin_score

    def cond(state):
        step, *_, alive_logp, _, fin_score = state
        best_possible = jnp.max(alive_logp, axis=1) / final_normalizer
        settled = jnp.all(jnp.min(fin_score, axis=1) >= best_possible)
        return (step < max_length) & ~settled

    empty = jnp.full((batch, beams, max_length), pad_id, jnp.int32)
    state = (
        jnp.int32(0),
        init_carry,
        jnp.full((batch * beams,), bos_id, jnp.int32),
        empty,
        jnp.tile(first_beam_only, (batch, 1)),
        empty,
        jnp.full((batch, beams), DEAD, jnp.float32),
    )
    *_, fin_seq, fin_score = jax.lax.while_loop(cond, body, state)
    return fin_seq, fin_score
