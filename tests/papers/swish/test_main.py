"""The Swish paper end to end through its main.py, as a user runs it."""

import os
import re
import signal
import time

import pytest

from tests.helpers import final_metrics, run_main, saved_parts, start_main

SMOKE = "--config=papers/swish/config.py:smoke"


def test_smoke_run_learns_and_writes_outputs(tmp_path):
    result = run_main("swish", SMOKE, f"--workdir={tmp_path}")
    final = final_metrics(result.stdout)
    assert final["eval/accuracy"] > 0.3, final  # 10 classes: chance is 0.1
    assert (tmp_path / "metrics.jsonl").exists()
    assert (tmp_path / "config.json").exists()
    assert os.listdir(tmp_path / "tensorboard")
    assert saved_parts(tmp_path)[0] == 30


@pytest.mark.long
def test_sigterm_leaves_a_restorable_checkpoint(tmp_path):
    process = start_main(
        "swish",
        "--config=papers/swish/config.py:smoke",
        "--config.train.num_steps=100000",
        "--config.train.checkpoint_every=100000",
        f"--workdir={tmp_path}",
    )
    deadline = time.time() + 240
    while not (tmp_path / "metrics.jsonl").exists():  # first log row: training is under way
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]  # stopped by a signal, after saving
    assert "SIGTERM received: saved step" in stdout + stderr
    step, leaves = saved_parts(tmp_path)
    assert 10 <= step < 100000
    assert {"params", "model_state", "opt_state"} <= {path.split("']")[0].removeprefix("['") for path in leaves}


@pytest.mark.long
def test_dry_run_prints_params_and_flops():
    result = run_main("swish", "--config=papers/swish/config.py:default", "--dry_run")
    params = int(re.search(r"^params: (\d+)$", result.stdout, re.M).group(1))
    flops = int(re.search(r"^flops: (\d+)$", result.stdout, re.M).group(1))
    # ResNet-20 (~0.27M weights) on one 28x28x1 image; swish adds a beta per channel per activation.
    assert 260_000 < params < 290_000
    assert 50e6 < flops < 90e6


@pytest.mark.long  # one subprocess each; tests/test_bad_input.py holds the same cases for every paper
@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--config.train.num_stepz=5", "num_stepz"),
        ("--config.model.activation=swishh", "unknown activation 'swishh'; valid choices: "),
        ("--config.model.name=resnet21", "unknown resnet 'resnet21'; valid choices: "),
        ("--config.dataset.name=fashion_mnst", "unknown dataset 'fashion_mnst'; valid choices: "),
        (
            "--config.optimizer.name=adamm",
            "unknown optimizer 'adamm'; valid choices: adam, adamw, momentum, nesterov, sgd",
        ),
    ],
)
def test_bad_config_values_fail_with_the_valid_choices(tmp_path, flag, message):
    result = run_main("swish", SMOKE, flag, f"--workdir={tmp_path}", check=False)
    assert result.returncode != 0
    assert message in result.stderr
