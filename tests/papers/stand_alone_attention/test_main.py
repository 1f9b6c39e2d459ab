"""Stand-alone self-attention end to end through its main.py, and its model sizes against the paper's Table 1."""

import json
import re

import pytest

from common.nn import counting
from papers.stand_alone_attention import config as sasa_config
from papers.stand_alone_attention import train
from tests.helpers import run_main

CONFIG = "--config=papers/stand_alone_attention/config.py"

# Table 1 of the paper: (params M, FLOPs B) at 224x224, a multiply-add counted as 2.
TABLE_1 = {
    "r26_baseline": (13.7, 4.7),
    "r38_baseline": (19.6, 6.5),
    "r50_baseline": (25.6, 8.2),
    "r26_conv_stem": (10.3, 4.5),
    "r38_conv_stem": (14.1, 5.7),
    "r50_conv_stem": (18.0, 7.0),
    "r26_full": (10.3, 4.7),
    "r38_full": (14.1, 6.0),
    "r50_full": (18.0, 7.2),
}


@pytest.mark.slow
def test_smoke_run_learns(tmp_path):
    result = run_main("stand_alone_attention", f"{CONFIG}:smoke", f"--workdir={tmp_path}")
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["eval/accuracy"] > 0.3, final  # 10 classes: chance is 0.1
    assert (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("variant", sorted(TABLE_1))
def test_model_size_matches_table_1(variant):
    """The counts `--dry_run` prints, computed in-process on the abstract model (fast)."""
    paper_params, paper_flops = TABLE_1[variant]
    model, input_shape = train.build_for_dry_run(sasa_config.get_config(variant))
    params = counting.count_params(model)
    flops = counting.count_model_flops(model, input_shape)
    assert abs(params / 1e6 - paper_params) / paper_params < 0.01, params
    assert abs(flops / 1e9 - paper_flops) / paper_flops < 0.10, flops


@pytest.mark.slow
def test_dry_run_prints_params_and_flops():
    result = run_main("stand_alone_attention", f"{CONFIG}:r50_full", "--dry_run")
    params = int(re.search(r"^params: (\d+)$", result.stdout, re.M).group(1))
    flops = int(re.search(r"^flops: (\d+)$", result.stdout, re.M).group(1))
    assert abs(params / 18.0e6 - 1) < 0.01
    assert abs(flops / 7.2e9 - 1) < 0.10


def test_bad_spatial_layer_fails_with_the_valid_choices(tmp_path):
    result = run_main(
        "stand_alone_attention", f"{CONFIG}:smoke", "--config.model.spatial_layer=atention", "--dry_run", check=False
    )
    assert result.returncode != 0
    assert "unknown spatial layer 'atention'; valid choices: attention, conv3x3" in result.stderr
