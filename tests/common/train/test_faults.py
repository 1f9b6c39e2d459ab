"""Faults a run must survive: a damaged newest checkpoint, a save that never finished, a torn metrics line."""

import json
import os
import shutil

import numpy as np
import pytest

from common.train.checkpoint import Checkpointer, CheckpointMismatchError
from common.train.metrics import read_metrics
from tests.common.train.test_checkpoint import saved
from tests.common.train.test_loop import make_config, run


def damage(step_dir: str) -> list[str]:
    """Truncates every file of the `params` part of one saved step to half its size; returns them."""
    damaged = []
    for root, _, names in os.walk(os.path.join(step_dir, "params")):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            damaged.append(path)
    assert damaged
    return damaged


@pytest.mark.parametrize("what", ["truncated", "metadata_missing", "empty"])
def test_a_damaged_newest_step_resumes_from_the_previous_one(tmp_path, capfd, what):
    config = make_config(num_steps=8, checkpoint_every=4, async_checkpoints=False)
    run(tmp_path / "reference", make_config(num_steps=12, checkpoint_every=4, async_checkpoints=False))
    run(tmp_path / "run", config)
    newest = tmp_path / "run" / "checkpoints" / "8"
    if what == "truncated":
        damage(str(newest))
    elif what == "empty":
        for part in os.listdir(newest):
            shutil.rmtree(newest / part) if (newest / part).is_dir() else os.remove(newest / part)
    else:
        os.remove(newest / "params" / "_METADATA")
    capfd.readouterr()
    run(tmp_path / "run", make_config(num_steps=12, checkpoint_every=4, async_checkpoints=False))
    assert "checkpoint step 8" in capfd.readouterr().err
    # Resumed from step 4 and retrained steps 5-12: the same weights as the run that was never damaged.
    for name in ("hidden", "out"):
        np.testing.assert_array_equal(
            saved(tmp_path / "run")[name]["kernel"], saved(tmp_path / "reference")[name]["kernel"]
        )


def test_every_step_damaged_is_one_clear_error(tmp_path):
    run(tmp_path, make_config(num_steps=4, checkpoint_every=2, async_checkpoints=False))
    for step in ("2", "4"):
        damage(str(tmp_path / "checkpoints" / step))
    with pytest.raises(CheckpointMismatchError, match=r"no checkpoint in .* can be read \(damaged steps: 4, 2\)"):
        run(tmp_path, make_config(num_steps=6, checkpoint_every=2, async_checkpoints=False))


def test_unfinished_save_directories_are_removed_on_start(tmp_path):
    leftover = tmp_path / "checkpoints" / "6.orbax-checkpoint-tmp-1733090000"
    leftover.mkdir(parents=True)
    (leftover / "partial").write_text("x")
    Checkpointer(str(tmp_path)).close()
    assert not leftover.exists()


def test_a_torn_last_metrics_line_is_ignored_and_a_resume_drops_it(tmp_path):
    run(tmp_path, make_config(num_steps=4, checkpoint_every=4))
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 6, "train/lo')  # the process died mid-write
    assert [row["step"] for row in read_metrics(str(tmp_path))][-1] == 4
    run(tmp_path, make_config(num_steps=6, checkpoint_every=2))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["step"] for row in rows if "train/loss" in row] == [2, 4, 6]


def test_a_damaged_metrics_line_before_the_last_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "x\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_metrics(str(path))
