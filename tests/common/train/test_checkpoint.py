"""Named checkpoint parts: weights restored without an optimizer, warm starts from another run's subtree, and
clear errors for checkpoints that do not fit."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from ml_collections import ConfigDict

from common.train import checkpoint, loop
from common.train.checkpoint import CheckpointMismatchError
from tests.common.train.test_loop import TinyNet, batches, eval_batches, eval_fn, loss_fn, make_config, run


class Classifier(nnx.Module):
    """A TinyNet backbone under `backbone` and a new head: the target of a warm start from a TinyNet run."""

    def __init__(self, rngs: nnx.Rngs, hidden: int = 16):
        self.backbone = TinyNet(rngs)
        if hidden != 16:
            self.backbone.hidden = nnx.Linear(6, hidden, rngs=rngs)
        self.head = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.head(self.backbone(x))


def saved(workdir, part="params"):
    checkpointer = checkpoint.Checkpointer(str(workdir))
    try:
        return checkpointer.load_raw(part)
    finally:
        checkpointer.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A TinyNet run of 8 steps with EMA, shared by the tests that read it."""
    workdir = tmp_path_factory.mktemp("trained")
    run(workdir, make_config(num_steps=8, ema_decay=0.9))
    return workdir


def test_restore_weights_needs_no_optimizer_and_loads_batchnorm_statistics(trained):
    fresh = TinyNet(nnx.Rngs(1))
    assert checkpoint.restore_weights(str(trained), fresh) == 8
    params, model_state = saved(trained), saved(trained, "model_state")
    np.testing.assert_array_equal(np.asarray(fresh.out.kernel.value), params["out"]["kernel"])
    np.testing.assert_array_equal(np.asarray(fresh.norm.mean.value), model_state["norm"]["mean"])
    assert fresh.norm.use_running_average  # eval mode: BatchNorm uses its running statistics


def test_restore_weights_can_load_the_ema_weights(trained):
    fresh = TinyNet(nnx.Rngs(1))
    checkpoint.restore_weights(str(trained), fresh, ema=True)
    ema, params = saved(trained, "ema"), saved(trained)
    np.testing.assert_array_equal(np.asarray(fresh.hidden.kernel.value), ema["hidden"]["kernel"])
    assert not np.allclose(ema["hidden"]["kernel"], params["hidden"]["kernel"])


def test_restore_weights_errors(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*empty/checkpoints: train there first"):
        checkpoint.restore_weights(str(tmp_path / "empty"), TinyNet(nnx.Rngs(0)))
    assert not (tmp_path / "empty").exists()  # looking does not create the directory
    with pytest.raises(FileNotFoundError, match="init_from: no checkpoint in"):
        checkpoint.warm_start(TinyNet(nnx.Rngs(0)), str(tmp_path / "empty"))
    with pytest.raises(CheckpointMismatchError, match=r"part params: missing from the checkpoint: backbone/hidden"):
        checkpoint.restore_weights(str(trained), Classifier(nnx.Rngs(0)))


def test_warm_start_copies_a_subtree_and_leaves_the_rest(trained):
    model = Classifier(nnx.Rngs(3))
    head_before = np.asarray(model.head.kernel.value).copy()
    assert checkpoint.warm_start(model, str(trained), "->backbone") == 8
    params = saved(trained)
    np.testing.assert_array_equal(np.asarray(model.backbone.hidden.kernel.value), params["hidden"]["kernel"])
    np.testing.assert_array_equal(np.asarray(model.backbone.norm.scale.value), params["norm"]["scale"])
    np.testing.assert_array_equal(np.asarray(model.head.kernel.value), head_before)
    # Batch statistics are not parameters: a warm start copies weights only.
    assert np.all(np.asarray(model.backbone.norm.mean.value) == 0)


def test_warm_start_of_several_subtrees(trained):
    model = Classifier(nnx.Rngs(3))
    checkpoint.warm_start(model, str(trained), "out->backbone/out, hidden->backbone/hidden")
    params = saved(trained)
    np.testing.assert_array_equal(np.asarray(model.backbone.out.bias.value), params["out"]["bias"])
    np.testing.assert_array_equal(np.asarray(model.backbone.hidden.bias.value), params["hidden"]["bias"])
    assert not np.allclose(params["norm"]["scale"], 1.0)  # trained away from its init, and not mapped:
    np.testing.assert_array_equal(np.asarray(model.backbone.norm.scale.value), np.ones(16, np.float32))


def test_warm_start_names_a_mis_shaped_leaf(trained):
    expected = r"<root> -> backbone: mis-shaped: hidden/bias \(saved \(16,\), expected \(32,\)\), hidden/kernel"
    with pytest.raises(CheckpointMismatchError, match=expected):
        checkpoint.warm_start(Classifier(nnx.Rngs(0), hidden=32), str(trained), "->backbone")


def test_warm_start_names_missing_and_unknown_paths(trained):
    with pytest.raises(CheckpointMismatchError, match=r"missing from the checkpoint: backbone/.*head/bias"):
        checkpoint.warm_start(Classifier(nnx.Rngs(0)), str(trained))  # whole tree onto whole tree
    with pytest.raises(CheckpointMismatchError, match=r"has no 'encoder': <root> holds backbone, head"):
        checkpoint.warm_start(Classifier(nnx.Rngs(0)), str(trained), "->encoder")
    with pytest.raises(CheckpointMismatchError, match=r"source .* has no 'lm': <root> holds hidden, norm, out"):
        checkpoint.warm_start(Classifier(nnx.Rngs(0)), str(trained), "lm->backbone")
    with pytest.raises(ValueError, match=r"'hidden=backbone' is not of the form"):
        checkpoint.warm_start(Classifier(nnx.Rngs(0)), str(trained), "hidden=backbone")


def test_a_run_with_init_from_starts_from_the_other_runs_weights(trained, tmp_path):
    config = make_config(num_steps=1, eval_every=0)
    with config.unlocked():
        config.init_from = ConfigDict({"workdir": str(trained), "mapping": "", "part": "params"})
    task = loop.TrainTask(
        model=TinyNet(nnx.Rngs(5)),
        loss_fn=loss_fn,
        make_train_iterator=batches,
        eval_fn=eval_fn,
        make_eval_iterator=eval_batches,
    )
    loop.train(task, optax.sgd(0.0), config, str(tmp_path), seed=0, show_progress=False)  # lr 0: weights stay
    source, started = saved(trained), saved(tmp_path)
    np.testing.assert_array_equal(started["out"]["kernel"], source["out"]["kernel"])
    np.testing.assert_array_equal(started["hidden"]["bias"], source["hidden"]["bias"])


def test_init_from_takes_several_named_sources_in_order(trained, tmp_path):
    config = make_config(num_steps=1, eval_every=0)
    with config.unlocked():
        config.init_from = ConfigDict(
            {
                "hidden_only": {"workdir": str(trained), "mapping": "hidden->hidden", "part": "params"},
                "off": {"workdir": "", "mapping": "", "part": "params"},
                "out_only": {"workdir": str(trained), "mapping": "out->out", "part": "params"},
            }
        )
    fresh = TinyNet(nnx.Rngs(5))
    fresh_norm = jax.tree_util.tree_map(np.asarray, nnx.state(fresh, nnx.Param).to_pure_dict()["norm"])
    task = loop.TrainTask(
        model=fresh, loss_fn=loss_fn, make_train_iterator=batches, eval_fn=eval_fn, make_eval_iterator=eval_batches
    )
    loop.train(task, optax.sgd(0.0), config, str(tmp_path), seed=0, show_progress=False)
    source, started = saved(trained), saved(tmp_path)
    np.testing.assert_array_equal(started["out"]["kernel"], source["out"]["kernel"])
    np.testing.assert_array_equal(started["hidden"]["kernel"], source["hidden"]["kernel"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, started["norm"], fresh_norm)  # not mapped: untouched
