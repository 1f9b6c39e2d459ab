"""Every non-RL paper's smoke run, killed after its first periodic checkpoint and started again, ends with the
parameters, model state and optimizer state of an uninterrupted run, bit for bit (the RL papers' resumes are
tested in tests/papers/svpg and tests/common/rl)."""

import signal
import time

import numpy as np
import pytest

from common.sweep import load_config
from tests.helpers import run_main, saved_parts, start_main

PAPERS = [
    "swish",
    "stand_alone_attention",
    "halonet",
    "low_rank_local",
    "backprop_evolution",
    "seq2seq_pretraining",
    "fast_generation",
    "fast_wavenet",
]


@pytest.mark.long
@pytest.mark.parametrize("paper", PAPERS)
def test_killed_smoke_run_resumes_to_identical_state(paper, tmp_path):
    spec = f"papers/{paper}/config.py:smoke"
    train = load_config(spec).train
    assert train.checkpoint_every < train.num_steps, "the smoke run needs a checkpoint before its end"
    smoke = f"--config={spec}"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_main(paper, smoke, f"--workdir={straight}", timeout=600)

    process = start_main(paper, smoke, f"--workdir={killed}")
    deadline = time.time() + 300
    while not (killed / "checkpoints" / str(train.checkpoint_every)).exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert not (killed / "checkpoints" / str(train.num_steps)).exists(), "the run ended before it was killed"

    run_main(paper, smoke, f"--workdir={killed}", timeout=600)
    (step_a, a), (step_b, b) = saved_parts(straight), saved_parts(killed)
    assert step_a == step_b == train.num_steps
    assert a.keys() == b.keys() and any("params" in key for key in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
