"""Seq2Seq: step-by-step decoding equals teacher forcing, source padding is ignored, the paper's two additions
change the graph as documented, and a warm start from language models copies exactly the mapped parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import seq2seq
from common.nn.lstm import LSTMLanguageModel
from common.nn.seq2seq import SOURCE_LM_MAPPING, TARGET_LM_MAPPING, Seq2Seq
from common.train import checkpoint

VOCAB, EMBED, HIDDEN, LAYERS = 13, 6, 8, 3
SOURCE = jnp.array([[3, 4, 5, 6, 7, 2], [8, 9, 10, 2, 0, 0]])  # right-padded with 0
TARGET_INPUTS = jnp.array([[1, 5, 6, 7, 8], [1, 11, 12, 0, 0]])


def make(residual=True, attend=True, seed=0, layers=LAYERS):
    return Seq2Seq(
        VOCAB, EMBED, HIDDEN, layers, 0.1, residual_first_layer=residual, attend_first_layer=attend, rngs=nnx.Rngs(seed)
    )


@nnx.jit
def forward(model, source, target_inputs):
    """Teacher-forced logits, compiled once per model structure (eager scans recompile at every call)."""
    return model(source, target_inputs)


@nnx.jit
def decode_step(model, memory, carry, token):
    return model.decode_step(memory, carry, token)


def decode_stepwise(model, source, target_inputs):
    memory = model.encode(source)
    carry = model.init_decode_carry(memory)
    logits = []
    for t in range(target_inputs.shape[1]):
        carry, step_logits = decode_step(model, memory, carry, target_inputs[:, t])
        logits.append(step_logits)
    return jnp.stack(logits, axis=1)


@pytest.mark.parametrize("residual,attend", [(False, False), (True, True)])
def test_decode_step_equals_teacher_forcing(residual, attend):
    model = make(residual, attend)
    logits = forward(model, SOURCE, TARGET_INPUTS)
    assert logits.shape == (2, 5, VOCAB) and logits.dtype == jnp.float32
    np.testing.assert_allclose(decode_stepwise(model, SOURCE, TARGET_INPUTS), logits, atol=1e-5)


def test_parameter_paths_for_the_warm_start_mapping():
    params = nnx.state(make(), nnx.Param).to_pure_dict()
    assert {"embed", "layers", "lm_softmax"} <= set(params["encoder"])
    assert {"embed", "layers", "softmax", "attention_query", "attention_combine"} <= set(params["decoder"])
    assert sorted(params["decoder"]["layers"]) == [0, 1, 2]
    assert params["decoder"]["layers"][0]["input_proj"]["kernel"].shape == (EMBED, 4 * HIDDEN)  # embedding only
    assert params["decoder"]["layers"][1]["input_proj"]["kernel"].shape == (HIDDEN, 4 * HIDDEN)


def test_attention_ignores_source_padding():
    model = make()
    logits = forward(model, SOURCE, TARGET_INPUTS)
    longer = jnp.pad(SOURCE, ((0, 0), (0, 4)))
    np.testing.assert_allclose(forward(model, longer, TARGET_INPUTS), logits, atol=1e-6)
    memory = model.encode(SOURCE)
    np.testing.assert_array_equal(memory.mask, jnp.concatenate([SOURCE != 0, SOURCE != 0], axis=1))
    scrambled = memory._replace(values=jnp.where(memory.mask[..., None], memory.values, 1e3))
    carry = model.init_decode_carry(memory)
    _, expected = model.decode_step(memory, carry, TARGET_INPUTS[:, 0])
    _, got = model.decode_step(scrambled, carry, TARGET_INPUTS[:, 0])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_residual_first_layer_routes_the_first_decoder_layer_to_the_softmax():
    for residual in (False, True):
        model = make(residual=residual, attend=False)
        model.decoder.attention_combine.kernel.value = jnp.zeros_like(model.decoder.attention_combine.kernel.value)
        logits = forward(model, SOURCE, TARGET_INPUTS)
        if residual:  # softmax(layer0 output): exactly the target language-model head
            np.testing.assert_allclose(logits, model.target_lm_logits(TARGET_INPUTS), atol=1e-6)
        else:  # nothing reaches the softmax but its bias
            np.testing.assert_allclose(logits, jnp.broadcast_to(model.decoder.softmax.bias.value, logits.shape))


def test_attend_first_layer_lets_the_decoder_read_the_first_encoder_layer():
    for attend in (False, True):
        model = make(residual=False, attend=attend)
        top = model.encoder.layers[-1]
        for linear in (top.input_proj, top.hidden_proj):  # the top encoder layer forgets its input
            linear.kernel.value = jnp.zeros_like(linear.kernel.value)
        other_source = SOURCE.at[0, 1].set(11)
        logits, other_logits = forward(model, SOURCE, TARGET_INPUTS), forward(model, other_source, TARGET_INPUTS)
        changed = not np.allclose(logits[0], other_logits[0])
        assert changed == attend
        if attend:
            outputs = model.encoder(SOURCE)
            np.testing.assert_allclose(model.encode(SOURCE).values, jnp.concatenate(outputs[::2], axis=1))


def test_dropout_is_on_only_in_training_and_reproducible():
    model = make()
    train = model(SOURCE, TARGET_INPUTS, deterministic=False, rngs=nnx.Rngs(dropout=4))
    assert not np.allclose(train, forward(model, SOURCE, TARGET_INPUTS))
    np.testing.assert_array_equal(train, model(SOURCE, TARGET_INPUTS, deterministic=False, rngs=nnx.Rngs(dropout=4)))


def save_params(module, workdir):
    checkpointer = checkpoint.Checkpointer(str(workdir), async_save=False)
    try:
        checkpointer.maybe_save(1, {"params": nnx.state(module, nnx.Param)}, force=True)
    finally:
        checkpointer.close()


def flat(module):
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(module, nnx.Param).to_pure_dict())[0]
    return {"/".join(str(k.key) for k in path): np.asarray(leaf) for path, leaf in leaves}


def test_warm_start_from_two_language_models_copies_exactly_the_mapped_parameters(tmp_path):
    source_lm = LSTMLanguageModel(VOCAB, EMBED, HIDDEN, 1, 0.0, rngs=nnx.Rngs(10))
    target_lm = LSTMLanguageModel(VOCAB, EMBED, HIDDEN, 1, 0.0, rngs=nnx.Rngs(11))
    save_params(source_lm, tmp_path / "source")
    save_params(target_lm, tmp_path / "target")
    model = make()
    before = flat(model)
    assert checkpoint.warm_start(model, str(tmp_path / "source"), SOURCE_LM_MAPPING) == 1
    assert checkpoint.warm_start(model, str(tmp_path / "target"), TARGET_LM_MAPPING) == 1
    after = flat(model)
    copied = {}
    for lm, mapping in ((source_lm, SOURCE_LM_MAPPING), (target_lm, TARGET_LM_MAPPING)):
        lm_leaves = flat(lm)
        for source_path, target_path in checkpoint.parse_mapping(mapping):
            for path, leaf in lm_leaves.items():
                if path.startswith(source_path + "/"):
                    copied[target_path + path[len(source_path) :]] = leaf
    assert len(copied) == 2 * 6  # embedding, 3 LSTM arrays, softmax kernel and bias, per language model
    assert set(after) == set(before)
    for path in after:
        expected = copied.get(path, before[path])
        np.testing.assert_array_equal(after[path], expected, err_msg=path)
    # The pretrained heads now compute exactly what the language models computed.
    tokens = TARGET_INPUTS
    np.testing.assert_allclose(model.source_lm_logits(tokens), source_lm(tokens), atol=1e-6)
    np.testing.assert_allclose(model.target_lm_logits(tokens), target_lm(tokens), atol=1e-6)


def test_generate_greedy_and_beam():
    model = make()
    tokens, log_prob = nnx.jit(seq2seq.generate, static_argnames=("max_length", "bos_id", "eos_id"))(
        model, SOURCE, max_length=5, bos_id=1, eos_id=2
    )
    assert tokens.shape == (2, 5) and log_prob.shape == (2,)
    assert not np.any((np.asarray(tokens) == 0) & (np.cumsum(np.asarray(tokens) == 2, axis=1) == 0))  # no pad
    beam_tokens, scores = seq2seq.generate(
        model, SOURCE, max_length=5, bos_id=1, eos_id=2, beam_size=3, length_penalty=0.0
    )
    assert beam_tokens.shape == (2, 3, 5) and scores.shape == (2, 3)
    # Each score (no length penalty) is the teacher-forced log-probability of its hypothesis, up to its eos.
    for b in range(2):
        for k in range(3):
            row = [int(t) for t in beam_tokens[b, k]]
            length = row.index(2) + 1 if 2 in row else len(row)
            inputs = jnp.array([[1] + row[:-1]])
            log_probs = jax.nn.log_softmax(forward(model, SOURCE[b : b + 1], inputs)[0].at[:, 0].set(-jnp.inf))
            expected = sum(float(log_probs[t, row[t]]) for t in range(length))
            np.testing.assert_allclose(scores[b, k], expected, rtol=1e-4)
