"""Beam search against exhaustive enumeration on a model small enough to score every sequence, and against
greedy decoding."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.nn.beam_search import beam_search, greedy_decode, tile_for_beams

VOCAB, EOS, BOS, MAX_LENGTH = 4, 1, 0, 4


def make_step(seed: int, batch: int):
    """A toy recurrent model: the carry is a hidden vector [N, 3]; the logits depend on the whole history.
    Returns (jax step, numpy weights for the enumeration, initial carry [batch, 3])."""
    rng = np.random.default_rng(seed)
    weights = (rng.normal(size=(VOCAB, 3)), rng.normal(size=(3, 3)), 2.0 * rng.normal(size=(3, VOCAB)))
    embed, recur, out = (jnp.asarray(w, jnp.float32) for w in weights)

    def step(carry, token):
        hidden = jnp.tanh(carry @ recur + embed[token])
        return hidden, hidden @ out

    return step, weights, rng.normal(size=(batch, 3)).astype(np.float32)


def exhaustive(weights, init_row, length_penalty):
    """Every hypothesis of one example with its score (numpy, float64), best first: [(tokens tuple, score)]."""
    embed, recur, out = weights

    def log_softmax(z):
        return z - z.max() - np.log(np.exp(z - z.max()).sum())

    results = []
    for n in range(1, MAX_LENGTH + 1):
        for tokens in itertools.product(range(VOCAB), repeat=n):
            if EOS in tokens[:-1] or (n < MAX_LENGTH and tokens[-1] != EOS):
                continue
            hidden, last, total = init_row.astype(np.float64), BOS, 0.0
            for token in tokens:
                hidden = np.tanh(hidden @ recur + embed[last])
                total += log_softmax(hidden @ out)[token]
                last = token
            results.append((tokens, total / ((5.0 + n) / 6.0) ** length_penalty))
    return sorted(results, key=lambda item: -item[1])


def unpadded(row):
    row = [int(t) for t in row]
    return tuple(row[: row.index(EOS) + 1]) if EOS in row else tuple(row)


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 2.0])
def test_a_wide_beam_finds_the_exact_best_hypotheses(length_penalty):
    batch, beams = 2, 64
    step, weights, init = make_step(0, batch)
    search = jax.jit(
        lambda carry: beam_search(
            step,
            carry,
            batch_size=batch,
            beam_size=beams,
            max_length=MAX_LENGTH,
            bos_id=BOS,
            eos_id=EOS,
            length_penalty=length_penalty,
        )
    )
    tokens, scores = search(tile_for_beams(init, beams))
    assert tokens.shape == (batch, beams, MAX_LENGTH) and tokens.dtype == jnp.int32
    for b in range(batch):
        expected = exhaustive(weights, init[b], length_penalty)[:8]
        found = [(unpadded(tokens[b, k]), float(scores[b, k])) for k in range(8)]
        assert [t for t, _ in found] == [t for t, _ in expected]
        np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5)
        assert np.all(np.diff(np.asarray(scores[b])) <= 0)  # best first
        for k in range(8):  # padding after eos
            row = list(np.asarray(tokens[b, k]))
            if EOS in row:
                assert all(t == 0 for t in row[row.index(EOS) + 1 :])


def test_beam_one_equals_greedy_without_length_penalty():
    batch = 5
    step, weights, init = make_step(3, batch)
    greedy_tokens, greedy_logp = jax.jit(
        lambda c: greedy_decode(step, c, max_length=MAX_LENGTH, bos_id=BOS, eos_id=EOS)
    )(init)
    beam_tokens, beam_scores = beam_search(
        step, init, batch_size=batch, beam_size=1, max_length=MAX_LENGTH, bos_id=BOS, eos_id=EOS, length_penalty=0.0
    )
    np.testing.assert_array_equal(beam_tokens[:, 0], greedy_tokens)
    np.testing.assert_allclose(beam_scores[:, 0], greedy_logp, rtol=1e-5)


def test_greedy_decode_takes_the_argmax_and_stops_at_eos():
    step, weights, init = make_step(5, 3)
    tokens, log_prob = greedy_decode(step, init, max_length=6, bos_id=BOS, eos_id=EOS)
    for b in range(3):
        carry, last, total, ended = jnp.asarray(init[b : b + 1]), jnp.array([BOS]), 0.0, False
        for t in range(6):
            if ended:
                assert tokens[b, t] == 0
                continue
            carry, logits = step(carry, last)
            token = int(jnp.argmax(logits[0]))
            assert tokens[b, t] == token
            total += float(jax.nn.log_softmax(logits[0])[token])
            last, ended = jnp.array([token]), token == EOS
        np.testing.assert_allclose(log_prob[b], total, rtol=1e-5)


def test_bad_sizes_are_named():
    step, weights, init = make_step(0, 1)
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        beam_search(step, init, batch_size=1, beam_size=0, max_length=3, bos_id=BOS, eos_id=EOS)
    with pytest.raises(ValueError, match="length_penalty must be >= 0, got -1"):
        beam_search(step, init, batch_size=1, beam_size=2, max_length=3, bos_id=BOS, eos_id=EOS, length_penalty=-1)
    with pytest.raises(ValueError, match="max_length must be >= 1, got 0"):
        greedy_decode(step, init, max_length=0, bos_id=BOS, eos_id=EOS)
