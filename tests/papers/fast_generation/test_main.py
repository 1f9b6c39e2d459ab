"""Fast generation (PixelCNN++) end to end, as a user runs it: train on the smoke config (the real offline digits),
report bits/dim, write the cached generator's grid; regenerate naively from the checkpoint (the same images); the
dry-run model and config errors."""

import json

import numpy as np
import pytest
from PIL import Image

from common.nn import counting
from common.registry import UnknownNameError
from papers.fast_generation import train
from papers.fast_generation.config import get_config
from tests.helpers import final_metrics, run_main, run_module

SMOKE = "--config=papers/fast_generation/config.py:smoke"
NAIVE = "--config.generate.method=naive"


@pytest.mark.long  # ~3 compilations of the unrolled network: minutes on 2 shared cores (10 min at load 10)
@pytest.mark.slow
def test_smoke_run_learns_reports_bits_per_dim_and_writes_the_grid(tmp_path):
    result = run_main("fast_generation", SMOKE, f"--workdir={tmp_path}", timeout=900)
    final = final_metrics(result.stdout)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    bits = [row["train/bits_per_dim"] for row in rows if "train/bits_per_dim" in row]
    assert len(bits) == 4 and bits[-1] < bits[0] - 0.2, bits  # logged every 5 of 20 steps; 8 bits = uniform
    assert final["eval/bits_per_dim"] < 6.0 and final["train_eval/bits_per_dim"] < 6.0, final
    assert final["generate/seconds"] > 0
    grid = np.asarray(Image.open(tmp_path / "samples" / "cached.png"))
    assert grid.shape == (2 * 8 * 1, 2 * (2 * 9 - 1))  # 2 images of 8 x 8 side by side, 1-pixel gap, 2x upscaled
    report = json.loads((tmp_path / "samples" / "generation.json").read_text())
    assert report["checkpoint_step"] == 20 and report["method"] == "cached"

    # The generation entry point restores the same checkpoint and the naive generator, with the same key, draws
    # the same images as the cached one did.
    run_module("papers.fast_generation.generate", SMOKE, f"--workdir={tmp_path}", NAIVE, timeout=600)
    naive = (tmp_path / "samples" / "naive.png").read_bytes()
    assert naive == (tmp_path / "samples" / "cached.png").read_bytes()
    assert json.loads((tmp_path / "samples" / "generation.json").read_text())["method"] == "naive"


def _weight_norm_conv(kernel_taps: int, in_features: int, out_features: int) -> int:
    return kernel_taps * in_features * out_features + 2 * out_features  # direction, scale and bias


def test_dry_run_model_size_and_bad_config_values():
    config = get_config("default")
    network, input_shape = train.build_for_dry_run(config)
    assert input_shape == (28, 28, 1)
    f = 16
    u_block = _weight_norm_conv(6, 2 * f, f) + _weight_norm_conv(6, 2 * f, 2 * f)  # 2 x 3 convs
    ul_block = _weight_norm_conv(4, 2 * f, f) + _weight_norm_conv(4, 2 * f, 2 * f)  # 2 x 2 convs
    expected = (
        _weight_norm_conv(6, 2, f)
        + _weight_norm_conv(3, 2, f)
        + _weight_norm_conv(2, 2, f)  # image + ones channel
        + 3 * u_block
        + 3 * (ul_block + _weight_norm_conv(1, 2 * f, f))  # down pass, 1 block per scale
        + 5 * (u_block + _weight_norm_conv(1, 2 * f, f))
        + 5 * (ul_block + _weight_norm_conv(1, 4 * f, f))  # up
        + 2 * 2 * (_weight_norm_conv(6, f, f) + _weight_norm_conv(4, f, f))  # 2 down- and 2 up-samplings
        + _weight_norm_conv(1, f, 5 * 3)  # head: 5 mixtures of (logit, mean, log scale)
    )
    assert counting.count_params(network) == expected
    with pytest.raises(UnknownNameError, match="unknown fast_generation config variant 'big'; valid choices: cifar10"):
        get_config("big")
    config.generate.method = "fast"
    with pytest.raises(UnknownNameError, match="unknown generation method 'fast'; valid choices: cached, naive"):
        train.build_for_dry_run(config)
    config.generate.method = "naive"
    config.model.nr_resnet = 0
    with pytest.raises(ValueError, match="nr_resnet, nr_filters and nr_logistic_mix must be >= 1, got 0, 16, 5"):
        train.build_for_dry_run(config)
