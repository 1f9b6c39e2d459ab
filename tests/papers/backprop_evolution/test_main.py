"""Backprop evolution end to end through its main.py, as a user runs it."""

import pytest
from flax import nnx

from common.registry import UnknownNameError
from papers.backprop_evolution import model
from papers.backprop_evolution.config import get_config
from tests.helpers import final_metrics, run_main


@pytest.mark.slow
def test_smoke_run_learns_and_reports_validation_accuracy(tmp_path):
    result = run_main(
        "backprop_evolution", "--config=papers/backprop_evolution/config.py:smoke", f"--workdir={tmp_path}"
    )
    final = final_metrics(result.stdout)
    assert final["eval/accuracy"] > 0.5, final  # 10 digit classes: chance is 0.1
    assert 0.5 < final["validation/accuracy"] <= 1.0, final
    assert (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("rule", "rule:mul.0.cosh.3.x", "unknown unary function 'cosh'; valid choices:"),
        ("name", "transformer", "unknown backprop evolution model 'transformer'; valid choices: convnet, mlp, resnet"),
        ("activation", "gelu", "unknown activation 'gelu'; valid choices: relu, tanh"),
        ("apply_to", "bias", "unknown rule target \\(apply_to\\) 'bias'; valid choices: both, inputs, weights"),
    ],
)
def test_bad_model_fields_fail_naming_the_choices(field, value, message):
    config = get_config("smoke")
    config.model[field] = value
    with pytest.raises(UnknownNameError, match=message):
        model.build_model(config, (8, 8, 1), 10, nnx.Rngs(0))
