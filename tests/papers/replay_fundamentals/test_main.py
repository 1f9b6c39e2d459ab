"""The replay study end to end: the single-process smoke run through its main.py, the dry-run network, the config
variants and their errors (the distributed run is in test_distributed.py)."""

import os
import re

import pytest

from common.nn import counting
from common.registry import UnknownNameError
from common.rl import agents
from common.sweep import apply_overrides
from papers.replay_fundamentals import config, train
from tests.common.rl.cartpole import dqn_smoke
from tests.helpers import final_metrics, run_main

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed

SMOKE = "--config=papers/replay_fundamentals/config.py:smoke"


def test_smoke_run_writes_metrics_and_checkpoints(tmp_path):
    final = final_metrics(run_main("replay_fundamentals", SMOKE, f"--workdir={tmp_path}").stdout)
    assert final["updates"] == 120 and abs(final["replay_ratio"] - 0.25) < 0.0125
    assert (tmp_path / "metrics.jsonl").exists() and os.listdir(tmp_path / "tensorboard")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["120", "60"]
    assert sorted(os.listdir(tmp_path / "replay")) == ["server", "step_120", "step_60"]


def test_dry_run_counts_the_minatar_rainbow_network():
    network, input_shape = train.build_for_dry_run(config.get_config("minatar_rainbow"))
    assert input_shape == (10, 10, 4)
    # conv 3x3x4x16 + dense 1024x128 + head 128 x (3 actions x 51 atoms), with biases
    assert counting.count_params(network) == (3 * 3 * 4 * 16 + 16) + (8 * 8 * 16 * 128 + 128) + (128 * 3 * 51 + 3 * 51)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("replay.sampler", "prio", "unknown replay sampler 'prio'; valid choices: prioritized, uniform"),
        ("env.name", "cartpol", "unknown environment 'cartpol'; valid choices: acrobot, cartpole"),
        ("run.mode", "async", "unknown run mode 'async'; valid choices: distributed, single_process"),
        ("replay.backend", "deque", "unknown replay backend 'deque'; valid choices: reverb, ring"),
        ("agent.network", "resnet", "unknown q-network 'resnet'; valid choices: minatar, mlp, nature"),
    ],
)
def test_bad_config_values_fail_with_the_valid_choices(tmp_path, key, value, message):
    bad = apply_overrides(config.get_config("smoke"), {key: value})
    with pytest.raises(UnknownNameError, match=re.escape(message)):
        train.train_and_evaluate(bad, str(tmp_path))


def test_the_smoke_variant_is_the_dqn_the_library_tests_train():
    """So the runner's tests (tests/common/rl) cover this paper's smoke run, without importing the paper."""
    assert agents.parse(config.get_config("smoke")) == agents.parse(dqn_smoke(variables_every=10))


def test_unknown_variant_lists_the_choices():
    with pytest.raises(UnknownNameError, match="unknown replay_fundamentals config variant 'rainbow'; valid choices: "):
        config.get_config("rainbow")


def test_study_variants_switch_exactly_one_component():
    dqn, rainbow = config.get_config("minatar_dqn"), config.get_config("minatar_rainbow")
    assert (dqn.agent.n_step, dqn.agent.distributional, dqn.replay.sampler) == (1, False, "uniform")
    assert (rainbow.agent.n_step, rainbow.agent.distributional, rainbow.replay.sampler) == (3, True, "prioritized")
    assert rainbow.agent.optimizer.name == "adam" and dqn.agent.optimizer.name == "rmsprop"
    for name in config.COMPONENTS:
        plus, minus = config.get_config(f"minatar_dqn_plus_{name}"), config.get_config(f"minatar_rainbow_minus_{name}")
        assert _differences(plus, dqn) == _differences(minus, rainbow) == sorted(config.COMPONENTS[name][0])


def _differences(a, b) -> list[str]:
    flat_a, flat_b = _flatten(a.to_dict()), _flatten(b.to_dict())
    return sorted(key for key in flat_a if flat_a[key] != flat_b[key])


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
