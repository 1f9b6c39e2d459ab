"""Seq2seq pretraining's own parts on tiny random models: the warm start each ablation selects copies exactly the
language models' weights it names and nothing else; the fine-tuning loss is the weighted sum it claims, over real
tokens only; bad names fail with the valid choices."""

import re

import jax
import numpy as np
import pytest
from flax import nnx

from common.nn import counting
from common.registry import UnknownNameError
from common.sweep import apply_overrides
from common.train import checkpoint, loop
from papers.seq2seq_pretraining import config as configs
from papers.seq2seq_pretraining import model, train

VOCAB = 23
PAD = 0
# LM subtree -> seq2seq subtree, per ablation: what must change, and from which LM.
EXPECTED_COPIES = {
    "full": {
        "source": {"embed": "encoder/embed", "layers/0": "encoder/layers/0", "softmax": "encoder/lm_softmax"},
        "target": {"embed": "decoder/embed", "layers/0": "decoder/layers/0", "softmax": "decoder/softmax"},
    },
    "no_pretraining": {"source": {}, "target": {}},
    "encoder_only": {
        "source": {"embed": "encoder/embed", "layers/0": "encoder/layers/0", "softmax": "encoder/lm_softmax"},
        "target": {},
    },
    "decoder_only": {
        "source": {},
        "target": {"embed": "decoder/embed", "layers/0": "decoder/layers/0", "softmax": "decoder/softmax"},
    },
    "embeddings_only": {"source": {"embed": "encoder/embed"}, "target": {"embed": "decoder/embed"}},
}
EXPECTED_COPIES["no_lm_objective"] = EXPECTED_COPIES["full"]


def tiny_config(**overrides):
    return apply_overrides(configs.get_config("smoke"), {"model.num_layers": 2, **overrides})


def flat_params(module) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(module, nnx.Param).to_pure_dict())[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf) for path, leaf in leaves}


@pytest.fixture(scope="module")
def language_models(tmp_path_factory):
    """An English and a German LM with random weights (biases too, which start as constants), saved where the
    smoke config's runs look."""
    workdir = str(tmp_path_factory.mktemp("run"))
    config = tiny_config()
    saved = {}
    for seed, side in enumerate(train.LANGUAGE_MODELS, start=10):
        lm = model.build_language_model(config, VOCAB, nnx.Rngs(seed))
        params = nnx.state(lm, nnx.Param)
        leaves, tree = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.key(seed), len(leaves))
        nnx.update(
            lm,
            jax.tree_util.tree_unflatten(
                tree, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
            ),
        )
        checkpointer = checkpoint.Checkpointer(train.language_model_workdir(config, workdir, side), async_save=False)
        checkpointer.maybe_save(7, {"params": nnx.state(lm, nnx.Param)}, force=True)
        checkpointer.close()
        saved[side] = flat_params(lm)
    return workdir, saved


@pytest.mark.parametrize("ablation", sorted(train.ABLATIONS))
def test_warm_start_copies_exactly_the_selected_lm_weights(language_models, ablation):
    workdir, saved = language_models
    config = tiny_config(ablation=ablation)
    seq2seq = model.build_seq2seq(config, VOCAB, nnx.Rngs(0))
    before = flat_params(seq2seq)
    for source in loop.init_sources(train.warm_start_config(config, workdir).init_from):  # as the loop does
        checkpoint.warm_start(seq2seq, source.workdir, source.mapping, part=source.part)
    after = flat_params(seq2seq)
    assert after.keys() == before.keys()

    copied = {}
    for side, subtrees in EXPECTED_COPIES[ablation].items():
        for lm_path, seq2seq_path in subtrees.items():
            leaves = {p[len(lm_path) :]: v for p, v in saved[side].items() if p.startswith(lm_path + "/")}
            assert leaves, lm_path
            for suffix, value in leaves.items():
                copied[seq2seq_path + suffix] = value
    for path, value in after.items():
        if path in copied:
            np.testing.assert_array_equal(value, copied[path], err_msg=path)
            assert not np.array_equal(value, before[path]), path
        else:
            np.testing.assert_array_equal(value, before[path], err_msg=f"{path} changed but is not pretrained")
    if ablation == "full":
        # every LM weight but the upper LSTM layers lands somewhere: 2 embeddings, 2 first layers, 2 softmaxes
        assert len(copied) == sum(not p.startswith("layers/1") for side in saved.values() for p in side)


def reference_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood over the labels that are not padding, in float64."""
    logits = logits.astype(np.float64)
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    log_probs -= logits.max(-1, keepdims=True)
    picked = np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    mask = labels != PAD
    return float(-(picked * mask).sum() / mask.sum())


def padded_rows(rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
    """int32 [batch, length]: random ids 1..VOCAB-1, each row padded after a random length >= 3."""
    rows = rng.integers(1, VOCAB, size=(batch, length)).astype(np.int32)
    for row, real in zip(rows, rng.integers(3, length + 1, size=batch), strict=True):
        row[real:] = PAD
    return rows


def test_multitask_loss_is_translation_plus_weighted_lm_nlls_over_real_tokens():
    config = tiny_config()
    seq2seq = model.build_seq2seq(config, VOCAB, nnx.Rngs(1))
    rng = np.random.default_rng(0)
    batch = {
        "source": padded_rows(rng, 3, 7),
        "target": padded_rows(rng, 3, 9),
        "source_lm": padded_rows(rng, 4, 8),
        "target_lm": padded_rows(rng, 4, 6),
    }
    # Extra padding columns at the end of every row must leave the loss where it was.
    wider = {**batch, **{key: np.pad(rows, ((0, 0), (0, 4))) for key, rows in batch.items() if key != "source"}}

    @nnx.jit  # one compilation for every forward pass below
    def run(seq2seq, batch, wider):
        target, english, german = batch["target"], batch["source_lm"], batch["target_lm"]
        logits = {
            "translation": seq2seq(batch["source"], target[:, :-1]),
            "source_lm": seq2seq.source_lm_logits(english[:, :-1]),
            "target_lm": seq2seq.target_lm_logits(german[:, :-1]),
        }
        key = jax.random.key(0)
        losses = {w: train.multitask_loss(seq2seq, batch, key, pad_id=PAD, weight=w) for w in (0.0, 0.3)}
        return logits, losses, train.multitask_loss(seq2seq, wider, key, pad_id=PAD, weight=0.3)[0]

    logits, losses, wider_loss = run(seq2seq, batch, wider)
    translation = reference_nll(np.asarray(logits["translation"]), batch["target"][:, 1:])
    source_lm = reference_nll(np.asarray(logits["source_lm"]), batch["source_lm"][:, 1:])
    target_lm = reference_nll(np.asarray(logits["target_lm"]), batch["target_lm"][:, 1:])
    for weight, (loss, metrics) in losses.items():
        assert float(metrics["translation_nll"]) == pytest.approx(translation, rel=1e-5)
        assert float(loss) == pytest.approx(translation + weight * (source_lm + target_lm), rel=1e-5)
    assert float(losses[0.3][1]["source_lm_nll"]) == pytest.approx(source_lm, rel=1e-5)
    assert float(losses[0.3][1]["target_lm_nll"]) == pytest.approx(target_lm, rel=1e-5)
    assert float(wider_loss) == pytest.approx(float(losses[0.3][0]), rel=1e-5)


def test_eval_sums_count_only_real_tokens_of_real_rows():
    config = tiny_config()
    seq2seq = model.build_seq2seq(config, VOCAB, nnx.Rngs(2))
    rng = np.random.default_rng(1)
    batch = {"source": padded_rows(rng, 4, 6), "target": padded_rows(rng, 4, 8), "mask": np.array([1, 1, 0, 1])}
    kept = batch["mask"] > 0

    @nnx.jit
    def run(seq2seq, batch):
        sums = train.translation_eval(seq2seq, batch, pad_id=PAD)
        return sums, seq2seq(batch["source"][kept], batch["target"][kept, :-1])

    sums, logits = run(seq2seq, batch)
    labels = batch["target"][kept, 1:]
    logits = np.asarray(logits)
    assert float(sums["count"]) == (labels != PAD).sum()
    assert float(sums["nll"]) / float(sums["count"]) == pytest.approx(reference_nll(logits, labels), rel=1e-5)


def test_ablation_off_switches_the_lm_objective_only_for_no_lm_objective():
    assert train.lm_weight(tiny_config(ablation="no_lm_objective")) == 0.0
    assert train.lm_weight(tiny_config(ablation="no_pretraining", lm_weight=0.5)) == 0.5


def test_unknown_names_list_the_valid_choices(tmp_path):
    choices = "decoder_only, embeddings_only, encoder_only, full, no_lm_objective, no_pretraining"
    with pytest.raises(UnknownNameError, match=re.escape(f"unknown ablation 'both'; valid choices: {choices}")):
        train.train_and_evaluate(tiny_config(ablation="both"), str(tmp_path))
    with pytest.raises(UnknownNameError, match="unknown seq2seq_pretraining config variant 'big'; valid choices: "):
        configs.get_config("big")


def test_dry_run_model_is_the_default_seq2seq():
    config = configs.get_config("default")
    wrapped, input_shape = train.build_for_dry_run(config)
    length, vocab, hidden = config.dataset.max_length, config.dataset.vocab_size, config.model.hidden_dim
    assert config.model.embed_dim == hidden and input_shape == (length,)
    # Embeddings; encoder and decoder LSTMs (input kernel and bias, hidden kernel: 4H x (D + H) + 4H); the source LM
    # softmax and the decoder softmax; attention W_a [H, H] and W_c [2H, H] (no biases).
    lstm = 4 * hidden * (2 * hidden) + 4 * hidden
    layers = config.model.num_layers
    expected = 2 * vocab * hidden + 2 * layers * lstm + 2 * (hidden * vocab + vocab) + 3 * hidden * hidden
    assert counting.count_params(wrapped) == expected
    assert counting.count_model_flops(wrapped, input_shape) > 2 * length * hidden * vocab  # at least the softmax
