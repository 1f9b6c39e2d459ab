"""The checks every script gets from common.app before it writes or compiles anything: config values, the
workdir lock, and the refusal to resume a run with a different config."""

import fcntl
import json

import pytest
from ml_collections import ConfigDict

from common import app
from common.errors import ConfigError, WorkdirError
from tests.helpers import workdir_lock_is_free


def config(**train) -> ConfigDict:
    return ConfigDict(
        {
            "model": {"activation": "relu", "width": 8},
            "dataset": {"name": "digits_local", "batch_size": 8, "data_dir": None},
            "train": {"num_steps": 10, "log_every": 2, "eval_every": 0, "checkpoint_every": 5, **train},
        }
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_steps", 0, "train.num_steps=0: must be a positive integer"),
        ("num_steps", -3, "train.num_steps=-3: must be a positive integer"),
        ("log_every", 0, "train.log_every=0: must be a positive integer"),
        ("checkpoint_every", 0, "train.checkpoint_every=0: must be a positive integer"),
        ("eval_every", -1, r"train.eval_every=-1: must be >= 0 \(0 turns it off\)"),
    ],
)
def test_counts_and_intervals_that_cannot_work_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        app.check_config(config(**{field: value}))


def test_a_valid_config_passes():
    app.check_config(config())


def test_the_rl_runs_checkpoint_interval_may_be_zero_but_not_negative():
    """run.checkpoint_every = 0 turns the RL runner's checkpoints off (common/rl/config.py); the supervised loop's
    train.checkpoint_every must stay positive (above)."""
    rl_config = ConfigDict({"run": {"total_updates": 10, "log_every": 5, "checkpoint_every": 0}})
    app.check_config(rl_config)
    rl_config.run.checkpoint_every = -1
    with pytest.raises(ConfigError, match=r"run.checkpoint_every=-1: must be >= 0"):
        app.check_config(rl_config)


def test_resuming_with_a_different_model_is_refused_naming_the_fields(tmp_path):
    (tmp_path / "config.json").write_text(config().to_json())
    (tmp_path / "metrics.jsonl").write_text("{}\n")  # the run has started
    changed = config()
    changed.model.activation = "gelu"
    with pytest.raises(
        WorkdirError, match=r"model.activation: 'relu' -> 'gelu'.*--allow_config_change=model.activation"
    ):
        app.check_resumable(str(tmp_path), changed)
    app.check_resumable(str(tmp_path), changed, allowed=("model.activation",))  # allowed explicitly


def test_resuming_for_more_steps_or_into_an_unstarted_workdir_is_allowed(tmp_path):
    (tmp_path / "config.json").write_text(config().to_json())
    app.check_resumable(str(tmp_path), config(num_steps=99, log_every=7))
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    app.check_resumable(str(tmp_path), config(num_steps=99, log_every=7))
    unstarted = tmp_path / "unstarted"
    unstarted.mkdir()
    (unstarted / "config.json").write_text(json.dumps({"model": {"activation": "tanh"}}))
    app.check_resumable(str(unstarted), config())  # nothing ran there yet: the old config.json does not count


def test_a_workdir_in_use_is_refused(tmp_path):
    with open(tmp_path / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another run holds it
        held.write("process 4242")
        held.flush()
        with pytest.raises(WorkdirError, match=r"in use by process 4242; wait for that run to end"):
            app.lock_workdir(str(tmp_path))
    app.lock_workdir(str(tmp_path))  # free again
    app.lock_workdir(str(tmp_path))  # this process holds it: taking it again is fine


def test_a_taken_workdir_is_locked_until_unlocked_and_refuses_another_config(tmp_path):
    workdir = tmp_path / "run"
    app.take_workdir(str(workdir), config())
    assert json.loads((workdir / "config.json").read_text()) == json.loads(config().to_json())
    assert not workdir_lock_is_free(workdir) and (workdir / ".lock").read_text().startswith("process ")
    app.unlock_workdir(str(workdir))
    assert workdir_lock_is_free(workdir) and (workdir / ".lock").read_text() == ""
    app.unlock_workdir(str(workdir))  # not held: nothing to do
    (workdir / "metrics.jsonl").write_text("{}\n")  # the run has started
    wider = config()
    wider.model.width = 16
    with pytest.raises(WorkdirError, match=r"model.width: 8 -> 16"):
        app.take_workdir(str(workdir), wider)
    app.unlock_workdir(str(workdir))  # a refused run lets go of the workdir like any other failure
    app.take_workdir(str(workdir), config(num_steps=20))  # more steps resume the same run
    assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 20
    app.unlock_workdir(str(workdir))
