"""The shared training loop: exact resume, SIGTERM saves, NaN stops, metrics files, EMA."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from ml_collections import ConfigDict

from common.train import loop
from common.train.checkpoint import Checkpointer, CheckpointMismatchError
from common.train.metrics import read_metrics


class TinyNet(nnx.Module):
    """Linear -> BatchNorm -> relu -> Linear: small, but with BatchNorm state that must survive a resume."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(6, 16, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.norm(self.hidden(x))))


def batches(start_step: int, *, poison_at: int | None = None, on_step=None):
    """Deterministic batches: batch i depends only on i, so a restart at any step sees the same stream."""
    step = start_step
    while True:
        if on_step is not None:
            on_step(step)
        rng = np.random.default_rng(step)
        x = rng.normal(size=(8, 6)).astype(np.float32)
        if poison_at is not None and step >= poison_at:
            x[0, 0] = np.nan
        yield {"x": x, "y": (x.sum(-1) > 0).astype(np.int32) + (x[:, 0] > 1).astype(np.int32)}
        step += 1


def eval_batches():
    for i in range(3):
        rng = np.random.default_rng(1000 + i)
        x = rng.normal(size=(8, 6)).astype(np.float32)
        yield {"x": x, "y": (x.sum(-1) > 0).astype(np.int32), "mask": np.ones(8, np.float32)}


def loss_fn(model, batch, rng):
    logits = model(batch["x"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, {"accuracy": (logits.argmax(-1) == batch["y"]).mean()}


def eval_fn(model, batch):
    logits = model(batch["x"])
    return {
        "accuracy": ((logits.argmax(-1) == batch["y"]) * batch["mask"]).sum(),
        "count": batch["mask"].sum(),
        "logit_mean": (logits.mean(-1) * batch["mask"]).sum(),
    }


def make_config(num_steps=12, **overrides) -> ConfigDict:
    config = ConfigDict(
        {
            "num_steps": num_steps,
            "log_every": 2,
            "eval_every": 6,
            "checkpoint_every": 4,
            "max_to_keep": 10,
            "ema_decay": 0.0,
            "async_checkpoints": True,
        }
    )
    config.update(overrides)
    return config


def run(workdir, config, make_iter=batches, seed=0, make_eval_iter=eval_batches):
    task = loop.TrainTask(
        model=TinyNet(nnx.Rngs(0)),
        loss_fn=loss_fn,
        make_train_iterator=make_iter,
        eval_fn=eval_fn,
        make_eval_iterator=make_eval_iter,
    )
    return loop.train(task, make_tx(), config, str(workdir), seed=seed, show_progress=False)


def make_tx():
    return optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(optax.cosine_decay_schedule(0.1, 12), momentum=0.9))


def saved_state(workdir, step=None):
    """The raw arrays of a checkpoint's parts, read back without any target structure."""
    checkpointer = Checkpointer(str(workdir))
    step = checkpointer.latest_step() if step is None else step
    names = [name for name in checkpointer.part_names(step) if name != "step"]
    restored = {name: checkpointer.load_raw(name, step) for name in names}
    checkpointer.close()
    return step, restored


def assert_trees_bitwise_equal(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    assert len(leaves_a) > 4
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_after_sigterm_is_bitwise_identical(tmp_path):
    straight = run(tmp_path / "straight", make_config())

    def sigterm_at_step_5(step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    interrupted = tmp_path / "interrupted"
    with pytest.raises(loop.TrainingStopped, match="SIGTERM received: saved step") as stopped:
        run(interrupted, make_config(), make_iter=lambda s: batches(s, on_step=sigterm_at_step_5))
    step, _ = saved_state(interrupted)
    assert 0 < step < 12 and step == stopped.value.step, "SIGTERM should have saved a checkpoint mid-run"
    resumed = run(interrupted, make_config())

    assert saved_state(interrupted)[0] == 12
    assert_trees_bitwise_equal(saved_state(tmp_path / "straight")[1], saved_state(interrupted)[1])
    assert straight == resumed
    steps = [row["step"] for row in read_metrics(str(interrupted)) if "train/loss" in row]
    assert steps == sorted(set(steps)) == [2, 4, 6, 8, 10, 12]


def test_rerun_of_a_finished_run_reports_without_training(tmp_path):
    first = run(tmp_path, make_config())
    again = run(tmp_path, make_config())
    assert first["eval/accuracy"] == again["eval/accuracy"]


def test_metrics_jsonl_has_train_and_eval_rows(tmp_path):
    final = run(tmp_path, make_config())
    rows = read_metrics(str(tmp_path))
    assert all("step" in row for row in rows)
    eval_rows = [row for row in rows if "eval/accuracy" in row]
    assert [row["step"] for row in eval_rows] == [6, 12]
    assert final["eval/accuracy"] == eval_rows[-1]["eval/accuracy"]
    assert 0.0 <= final["eval/accuracy"] <= 1.0
    assert {"train/loss", "train/accuracy", "train/grad_norm", "train/steps_per_second"} <= set(rows[0])
    assert os.listdir(tmp_path / "tensorboard")


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    expected = r"NaN/Inf between steps 8 and 10.*last good checkpoint is step 8"
    with pytest.raises(loop.NonFiniteLossError, match=expected):
        run(tmp_path, make_config(), make_iter=lambda s: batches(s, poison_at=9))
    step, state = saved_state(tmp_path)
    assert step == 8
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state))


def test_ema_weights_are_used_for_eval(tmp_path):
    final = run(tmp_path, make_config(ema_decay=0.9))
    _, state = saved_state(tmp_path)
    ema, params, norm = state["ema"], state["params"], state["model_state"]["norm"]
    assert not np.allclose(ema["out"]["kernel"], params["out"]["kernel"])

    def forward(x):  # eval-mode TinyNet with EMA weights and the running BatchNorm statistics
        h = x @ ema["hidden"]["kernel"] + ema["hidden"]["bias"]
        h = (h - norm["mean"]) / np.sqrt(norm["var"] + 1e-5)
        h = np.maximum(h * ema["norm"]["scale"] + ema["norm"]["bias"], 0)
        return h @ ema["out"]["kernel"] + ema["out"]["bias"]

    expected = np.mean([forward(b["x"]).mean(-1) for b in eval_batches()])
    np.testing.assert_allclose(final["eval/logit_mean"], expected, rtol=1e-5)


def test_loss_goes_down(tmp_path):
    run(tmp_path, make_config(num_steps=12))
    losses = [row["train/loss"] for row in read_metrics(str(tmp_path)) if "train/loss" in row]
    assert losses[-1] < losses[0]
    assert jnp.isfinite(jnp.asarray(losses)).all()


def test_checkpoint_holds_named_parts(tmp_path):
    run(tmp_path, make_config(num_steps=4, ema_decay=0.9))
    checkpointer = Checkpointer(str(tmp_path))
    assert checkpointer.part_names(4) == ["ema", "model_state", "opt_state", "params", "step"]
    restored = checkpointer.restore({"step": 0}, 4)
    checkpointer.close()
    assert restored["step"] == 4
    _, state = saved_state(tmp_path)
    assert set(state["params"]) == {"hidden", "norm", "out"}
    assert set(state["model_state"]["norm"]) == {"mean", "var"}


def test_resuming_with_a_different_model_names_the_mismatched_leaves(tmp_path):
    run(tmp_path, make_config(num_steps=4))
    task = loop.TrainTask(model=WiderNet(nnx.Rngs(0)), loss_fn=loss_fn, make_train_iterator=batches)
    with pytest.raises(
        CheckpointMismatchError, match=r"part params.*mis-shaped: hidden/bias \(saved \(16,\), expected \(32,\)\)"
    ):
        loop.train(task, make_tx(), make_config(num_steps=8), str(tmp_path), seed=0, show_progress=False)


class WiderNet(TinyNet):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(6, 32, rngs=rngs)
        self.norm = nnx.BatchNorm(32, rngs=rngs)
        self.out = nnx.Linear(32, 3, rngs=rngs)


def test_interim_evaluations_read_only_their_batches_and_the_final_one_reads_all(tmp_path):
    """With interim_eval_batches=1 the step-6 evaluation sees the first eval batch only (its accuracy is over 8
    examples, so a multiple of 1/8) and the final one all 3 batches; the final metrics match a full-eval run's."""
    seen = []

    def counted_eval_batches():
        for batch in eval_batches():
            seen.append(1)
            yield batch

    final = run(tmp_path / "interim", make_config(interim_eval_batches=1), make_eval_iter=counted_eval_batches)
    assert len(seen) == 1 + 3  # step 6: one batch; step 12 (the end): all three
    seen.clear()
    full = run(tmp_path / "full", make_config(), make_eval_iter=counted_eval_batches)
    assert len(seen) == 3 + 3
    assert final == full
    rows = [row for row in read_metrics(os.path.join(tmp_path / "interim", "metrics.jsonl")) if "eval/accuracy" in row]
    assert [row["step"] for row in rows] == [6, 12]
