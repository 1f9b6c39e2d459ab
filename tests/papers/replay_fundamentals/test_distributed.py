"""The distributed layout through main.py: a Reverb server process, 2 actor processes inserting over gRPC on
localhost, the learner; an actor killed mid-run is reported and restarted while the learner finishes."""

import json
import os
import re
import signal
import time

import pytest

from tests.helpers import final_metrics, start_main


@pytest.mark.long
@pytest.mark.slow
def test_distributed_run_finishes_and_survives_a_killed_actor(tmp_path):
    process = start_main(
        "replay_fundamentals",
        "--config=papers/replay_fundamentals/config.py:smoke_distributed",
        "--config.run.total_updates=200",
        f"--workdir={tmp_path}",
    )
    deadline = time.time() + 240
    while not (tmp_path / "metrics.jsonl").exists():  # the learner is updating: actors are inserting
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        time.sleep(0.1)
    victim = json.loads((tmp_path / "actors.json").read_text())[0]
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    assert re.search(rf"actor 0 \(pid {victim}\) died with exit code -9; restarting", stdout)
    final = final_metrics(stdout)
    assert final["updates"] == 200 and final["actor_restarts"] >= 1
    assert victim not in json.loads((tmp_path / "actors.json").read_text())
    # The limiter kept the ratio: 0.25 updates x 16 items per environment step, less the unpaid warm-up inserts.
    assert 3.0 < final["samples_per_insert"] <= 4.0 + 0.5
