"""SVPG end to end: the smoke config through main.py, a stopped run that resumes to the same result, the
baselines' shapes, the dry run, and the errors for bad names."""

import json
import re

import pytest

from common.nn import counting
from common.registry import UnknownNameError
from common.sweep import apply_overrides
from common.train.metrics import read_metrics
from papers.svpg import config, train
from tests.helpers import final_metrics, run_main

SMOKE = "--config=papers/svpg/config.py:smoke"


def test_smoke_run_and_a_stopped_run_resumes_to_the_same_result(tmp_path):
    """main.py trains 3 iterations; a run stopped after 2 (checkpointed) and started again ends with the same
    particle returns and metrics, bit for bit."""
    final = final_metrics(run_main("svpg", SMOKE, f"--workdir={tmp_path / 'whole'}").stdout)
    assert final["iterations"] == 3 and final["samples_per_particle"] == 3 * 2 * 50
    returns = [final[f"sorted_return_{i:02d}"] for i in range(4)]
    assert returns == sorted(returns, reverse=True) and all(0 < r <= 50 for r in returns)
    assert len(read_metrics(str(tmp_path / "whole"))) == 3

    smoke, resumed_dir = config.get_config("smoke"), str(tmp_path / "resumed")
    first = train.train_and_evaluate(apply_overrides(smoke, {"run.iterations": 2}), resumed_dir)
    assert first["iterations"] == 2
    logs = []
    resumed = train.train_and_evaluate(smoke, resumed_dir, log=logs.append)
    assert logs == ["resumed at iteration 2"]
    assert {k: v for k, v in resumed.items() if k != "workdir"} == pytest.approx(
        {k: v for k, v in final.items() if k != "workdir"}, abs=1e-6
    )
    rows = [json.dumps(row, sort_keys=True) for row in read_metrics(resumed_dir)]
    assert rows == [json.dumps(row, sort_keys=True) for row in read_metrics(str(tmp_path / "whole"))]


def test_joint_baseline_is_one_agent_with_all_the_environments():
    joint = apply_overrides(config.get_config("smoke"), {"svpg.method": "joint"})
    setup = train.build(joint)
    assert setup.num_policies == 1 and setup.rollouts.shape == (1, 4 * 2)
    assert train.build(config.get_config("smoke")).rollouts.shape == (4, 2)


def test_dry_run_counts_the_papers_policy():
    network, input_shape = train.build_for_dry_run(config.get_config("cartpole"))
    assert input_shape == (4,)
    # 100-50-25 tanh, 2 logits, with biases
    assert counting.count_params(network) == (4 * 100 + 100) + (100 * 50 + 50) + (50 * 25 + 25) + (25 * 2 + 2)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("svpg.method", "stein", "unknown svpg method 'stein'; valid choices: independent, joint, svpg"),
        ("agent.estimator", "ppo", "unknown policy-gradient estimator 'ppo'; valid choices: a2c, reinforce"),
        ("env.name", "cartpol", "unknown environment 'cartpol'; valid choices: "),
    ],
)
def test_bad_names_fail_with_the_valid_choices(tmp_path, key, value, message):
    bad = apply_overrides(config.get_config("smoke"), {key: value})
    with pytest.raises(UnknownNameError, match=re.escape(message)):
        train.train_and_evaluate(bad, str(tmp_path))


def test_unknown_variant_lists_the_choices():
    with pytest.raises(UnknownNameError, match="unknown svpg config variant 'swingup'; valid choices: "):
        config.get_config("swingup")
