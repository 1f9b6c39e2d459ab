"""The distributed layout through main.py: a Reverb server process, 2 actor processes inserting over gRPC on
localhost, the learner; an actor killed mid-run is reported and restarted while the learner finishes."""

import json
import os
import re
import signal
import time

import pytest

from tests.helpers import final_metrics, start_main

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed


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
    assert abs(final["replay_ratio"] / 0.25 - 1) < 0.05, final  # updates per environment step after the warm-up


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) is not running
        return f.read().split(")")[-1].split()[0] != "Z"


def _start_long_run(tmp_path):
    process = start_main(
        "replay_fundamentals",
        "--config=papers/replay_fundamentals/config.py:smoke_distributed",
        "--config.run.total_updates=1000000",
        f"--workdir={tmp_path}",
    )
    deadline = time.time() + 240
    try:
        while not (tmp_path / "metrics.jsonl").exists():
            assert process.poll() is None, process.communicate()
            assert time.time() < deadline, "no metrics after 240 s"
            time.sleep(0.1)
    except AssertionError:
        process.kill()  # its server and actors follow their parent within a second
        process.communicate()
        raise
    children = [int((tmp_path / "server.pid").read_text()), *json.loads((tmp_path / "actors.json").read_text())]
    return process, children


@pytest.mark.long
@pytest.mark.slow
def test_a_dead_server_ends_the_run_with_a_clear_error_and_no_process_left(tmp_path):
    process, children = _start_long_run(tmp_path)
    os.kill(children[0], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr[-3000:]
    assert "error: the Reverb server process exited with code -9" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    time.sleep(2)
    assert not [pid for pid in children if _alive(pid)]


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_the_learner_leaves_no_process_behind(tmp_path, sig):
    process, children = _start_long_run(tmp_path)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode in (128 + sig, -sig), (process.returncode, stderr[-3000:])
    if sig == signal.SIGTERM:  # saved first
        assert "SIGTERM received: saved" in stdout, stdout[-2000:]
        assert os.listdir(tmp_path / "checkpoints")
    deadline = time.time() + 10  # children notice their parent is gone within a second
    while [pid for pid in children if _alive(pid)] and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]
