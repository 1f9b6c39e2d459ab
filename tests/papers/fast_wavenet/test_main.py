"""Fast WaveNet end to end, as a user runs it: train on the smoke config (real espeak-ng speech from the tiny
builder), generate with both methods, write wavs; regenerate from the checkpoint; the benchmark's JSON output;
the dry-run model and config errors."""

import json
import wave

import pytest
from flax import nnx

from common.nn import counting
from common.registry import UnknownNameError
from papers.fast_wavenet import model, train
from papers.fast_wavenet.config import get_config
from tests.helpers import final_metrics, run_main, run_module

SMOKE = "--config=papers/fast_wavenet/config.py:smoke"
BENCH_KEYS = {"naive_samples_per_s", "fast_samples_per_s", "max_abs_logit_diff", "batch", "num_layers"}


@pytest.mark.long  # minutes of compiling both generators in two processes; tests/common/nn covers their exactness
@pytest.mark.slow
def test_smoke_run_trains_then_both_generators_agree_and_write_wavs(tmp_path):
    result = run_main("fast_wavenet", SMOKE, f"--workdir={tmp_path}")
    final = final_metrics(result.stdout)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    bits = [row["train/bits_per_sample"] for row in rows if "train/bits_per_sample" in row]
    assert len(bits) == 4 and bits[-1] < bits[0] - 0.08, bits  # logged every 5 of 20 steps; 8 bits = uniform
    assert final["eval/bits_per_sample"] < 8.0
    assert final["generate/max_abs_logit_diff"] <= 1e-4
    assert final["generate/identical_sample_fraction"] == 1.0
    for method in ("naive", "fast"):
        for sequence in range(4):
            with wave.open(str(tmp_path / "samples" / f"{method}_{sequence}.wav")) as f:
                assert (f.getframerate(), f.getnchannels(), f.getsampwidth(), f.getnframes()) == (16000, 1, 2, 200)

    # The generation entry point restores the same checkpoint and, with the same key, writes the same audio.
    naive_audio = (tmp_path / "samples" / "naive_0.wav").read_bytes()
    report = run_module(
        "papers.fast_wavenet.generate",
        SMOKE,
        f"--workdir={tmp_path}",
        "--config.generate.methods=('fast',)",
    )
    regenerated = final_metrics(report.stdout)
    assert regenerated["checkpoint_step"] == 20 and "naive_seconds" not in regenerated
    assert (tmp_path / "samples" / "fast_0.wav").read_bytes() == naive_audio


@pytest.mark.long
@pytest.mark.slow
def test_bench_quick_prints_one_json_object_per_configuration():
    result = run_module("papers.fast_wavenet.bench", "--quick", "--json", "--repeats=1")
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert BENCH_KEYS <= row.keys(), row
        assert row["naive_samples_per_s"] > 0 and row["fast_samples_per_s"] > 0
        assert row["max_abs_logit_diff"] <= 1e-4
    assert {row["activation"] for row in rows} == {"relu", "gated"}


def test_dry_run_model_size_and_bad_config_values():
    config = get_config("default")
    wavenet, input_shape = train.build_for_dry_run(config)
    # 16 layers: conv 2x32->64 (4,160) + skip 32->64 (2,112), 15 residuals 32->32 (1,056); embedding 256x32;
    # head 64->64 and 64->256; the speaker projections are left out of the dry-run model.
    assert counting.count_params(wavenet) == 16 * (4_160 + 2_112) + 15 * 1_056 + 8_192 + 4_160 + 16_640
    assert input_shape == (1024,)
    config.model.activation = "tanh"
    with pytest.raises(ValueError, match="unknown activation 'tanh'; valid choices: gated, relu"):
        model.build_model(config, 256, 4, nnx.Rngs(0))
    with pytest.raises(UnknownNameError, match="unknown fast_wavenet config variant 'fast'; valid choices: default"):
        get_config("fast")
