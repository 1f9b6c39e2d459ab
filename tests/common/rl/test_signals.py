"""SIGTERM to an RL run (both single-process runners: the replay DQN and SVPG) saves a checkpoint, exits 143 (the
shell's code for a SIGTERM) and leaves no process behind; rerunning resumes from the saved step."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, subprocess_env

RUNS = {
    "replay_fundamentals": ["--config=papers/replay_fundamentals/config.py:smoke", "--config.run.total_updates=100000"],
    "svpg": ["--config=papers/svpg/config.py:smoke", "--config.run.iterations=100000"],
}


@pytest.mark.long
@pytest.mark.parametrize("paper", sorted(RUNS))
def test_sigterm_saves_and_exits_143(paper, tmp_path):
    command = [sys.executable, "-m", f"papers.{paper}.main", *RUNS[paper], f"--workdir={tmp_path}"]
    process = subprocess.Popen(
        command, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 300
    while not (tmp_path / "metrics.jsonl").exists() and time.time() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    time.sleep(2.0)  # well inside the training loop
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, stdout[-2000:], stderr[-3000:])
    assert "SIGTERM received: saved" in stdout, stdout[-2000:]
    assert '"workdir"' not in stdout  # no final result printed as if the run had finished
    assert os.listdir(tmp_path / "checkpoints")
    with pytest.raises(ProcessLookupError):  # the whole process group is gone: nothing left running
        os.killpg(process.pid, 0)
