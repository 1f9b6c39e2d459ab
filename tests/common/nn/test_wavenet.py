"""WaveNet and its two generators: cached (fast) generation against the naive one, and both against one teacher-
forced forward pass of the model over the generated sequence; ring layout arithmetic; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import cached_conv, wavenet
from common.registry import UnknownNameError
from kernels import backend

# (activation, kernel_size, dilations, batch, speakers, impl). 40 samples is more than every receptive field here,
# so the rings wrap around and the naive window slides past the sequence start.
CASES = [
    ("gated", 2, (1, 2, 4, 8), 1, 0, "xla"),
    ("gated", 2, (1, 2, 4, 1, 2, 4), 3, 3, "xla"),
    ("gated", 3, (2, 1, 4), 5, 2, "xla"),  # batch above the small-batch threshold: the matmul path
    ("relu", 3, (1, 2, 4), 1, 2, "xla"),
    ("relu", 2, (1, 2, 4, 8), 2, 0, "pallas"),  # the kernel, interpreted
    ("gated", 2, (1, 2, 4), 2, 2, "pallas"),
    ("gated", 2, (1, 2, 4, 8), 1, 0, "fused"),  # batch 1: the multiply-reduce products
    ("gated", 2, (1, 2, 4, 1, 2, 4), 3, 3, "fused"),  # the dot products, speaker biases per row
    ("gated", 3, (2, 1, 4), 5, 2, "fused"),
    ("relu", 3, (1, 2, 4), 1, 2, "fused"),
    ("relu", 2, (1, 2, 4, 8), 2, 0, "fused"),
]
NUM_SAMPLES = 40


def make_model(activation, kernel_size, dilations, speakers, seed=0):
    return wavenet.WaveNet(
        dilations=dilations,
        residual_channels=8,
        skip_channels=12,
        kernel_size=kernel_size,
        activation=activation,
        num_classes=32,
        num_speakers=speakers,
        speaker_features=4,
        rngs=nnx.Rngs(seed),
    )


def speakers_for(batch, speakers):
    return jnp.arange(batch, dtype=jnp.int32) % speakers if speakers else None


@pytest.mark.parametrize(("activation", "kernel_size", "dilations", "batch", "speakers", "impl"), CASES)
def test_fast_and_naive_generation_agree_with_the_teacher_forced_model(
    activation, kernel_size, dilations, batch, speakers, impl
):
    model = make_model(activation, kernel_size, dilations, speakers)
    speaker = speakers_for(batch, speakers)
    key = jax.random.key(7)
    options = {"batch": batch, "num_samples": NUM_SAMPLES, "speaker": speaker, "temperature": 1.0}
    naive_codes, naive_logits = wavenet.generate(model, method="naive", key=key, **options)
    fast_codes, fast_logits = wavenet.generate(model, method="fast", key=key, impl=impl, **options)

    assert naive_codes.shape == (batch, NUM_SAMPLES) and naive_logits.shape == (NUM_SAMPLES, batch, 32)
    np.testing.assert_array_equal(fast_codes, naive_codes)
    np.testing.assert_allclose(fast_logits, naive_logits, atol=1e-4, rtol=0)
    assert len(np.unique(np.asarray(fast_codes))) > 3  # really sampled, not one repeated code

    # One forward pass over [first code, samples[:-1]] predicts every generated step at once.
    inputs = jnp.concatenate([jnp.full((batch, 1), 16, jnp.int32), fast_codes[:, :-1]], axis=1)
    teacher_forced = model(inputs, speaker)
    np.testing.assert_allclose(fast_logits.transpose(1, 0, 2), teacher_forced, atol=1e-4, rtol=0)


def test_same_key_same_samples_other_key_other_samples_and_greedy_is_argmax():
    model = make_model("gated", 2, (1, 2, 4), 0)
    options = {"method": "fast", "batch": 2, "num_samples": 30}
    a, logits = wavenet.generate(model, key=jax.random.key(1), **options)
    b, _ = wavenet.generate(model, key=jax.random.key(1), **options)
    c, _ = wavenet.generate(model, key=jax.random.key(2), **options)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    greedy, greedy_logits = wavenet.generate(model, key=jax.random.key(1), temperature=0.0, **options)
    np.testing.assert_array_equal(greedy, np.argmax(greedy_logits, axis=-1).T)
    shorter, _ = wavenet.generate(model, key=jax.random.key(1), **dict(options, num_samples=10))
    np.testing.assert_array_equal(shorter, a[:, :10])  # per-step noise: a prefix of a longer run


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_samples_follow_the_tempered_softmax(temperature):
    logits = jnp.tile(jnp.array([[0.0, 1.0, 2.0, 3.0]]), (20_000, 1))
    noise = jax.random.gumbel(jax.random.key(0), logits.shape)
    codes = cached_conv.sample_codes(logits, noise, temperature)
    frequencies = np.bincount(np.asarray(codes), minlength=4) / codes.shape[0]
    np.testing.assert_allclose(frequencies, jax.nn.softmax(logits[0] / temperature), atol=0.015)


def test_model_is_causal_with_the_stated_receptive_field():
    model = make_model("gated", 2, (1, 2, 4), 0)
    field = model.receptive_field
    assert field == 8
    codes = jax.random.randint(jax.random.PRNGKey(0), (1, 20), 0, 32)
    logits = model(codes)
    changed = model(codes.at[0, 10].set((codes[0, 10] + 1) % 32))
    differs = np.abs(np.asarray(changed - logits)).max(axis=-1)[0] > 0
    np.testing.assert_array_equal(np.nonzero(differs)[0], np.arange(10, 10 + field))


def test_ring_layout_slots():
    ring = cached_conv.RingLayout((1, 4, 2), kernel_size=3)
    np.testing.assert_array_equal(ring.lengths, [2, 8, 4])
    np.testing.assert_array_equal(ring.offsets, [0, 2, 10])
    assert ring.num_slots == 14 and ring.receptive_field == 1 + 2 * 7
    step = 9
    np.testing.assert_array_equal(ring.write_slots(step), [0 + 9 % 2, 2 + 9 % 8, 10 + 9 % 4])
    # taps x[t - 2d], x[t - d]: rows where those steps were written
    np.testing.assert_array_equal(
        ring.read_slots(step), [[0 + 7 % 2, 0 + 8 % 2], [2 + 1, 2 + 5], [10 + 5 % 4, 10 + 7 % 4]]
    )


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="unknown activation 'tanh'; valid choices: gated, relu"):
        make_model("tanh", 2, (1,), 0)
    with pytest.raises(ValueError, match="kernel_size must be >= 2"):
        make_model("gated", 1, (1,), 0)
    with pytest.raises(ValueError, match="dilations must be"):
        make_model("gated", 2, (1, 0), 0)
    model = make_model("gated", 2, (1, 2), 3)
    with pytest.raises(UnknownNameError, match="unknown generation method 'slow'; valid choices: fast, naive"):
        wavenet.generate(model, method="slow", batch=1, num_samples=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"speaker must be int \[2\]"):
        wavenet.generate(model, method="fast", batch=2, num_samples=2, key=jax.random.key(0))
    with pytest.raises(
        UnknownNameError, match="unknown cached step impl 'cuda'; valid choices: auto, fused, pallas, xla"
    ):
        wavenet.generate(model, method="fast", batch=1, num_samples=2, impl="cuda", key=jax.random.key(0))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        cached_conv.sample_codes(jnp.zeros((1, 4)), jnp.zeros((1, 4)), -1.0)
    with pytest.raises(ValueError, match="no speaker conditioning"):
        make_model("gated", 2, (1,), 0)(jnp.zeros((1, 4), jnp.int32), jnp.zeros((1,), jnp.int32))


@pytest.mark.parametrize("platform", [None, "gpu", "tpu"])
def test_auto_generation_step_by_machine(monkeypatch, platform):
    """On a pretended machine: the stack kernel on TPU only (on a GPU it measured slower than XLA); elsewhere the
    stack step at batch 1 and the fused step above it."""
    monkeypatch.setattr(backend, "accelerator", lambda: platform)
    kernel = platform == "tpu"
    assert wavenet.resolve_fast_impl("auto", batch=1) == ("pallas" if kernel else "xla")
    assert wavenet.resolve_fast_impl("auto", batch=16) == ("pallas" if kernel else "fused")
    assert wavenet.resolve_fast_impl("pallas", batch=16) == "pallas"
