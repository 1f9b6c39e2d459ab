"""Seq2seq pretraining end to end through main.py on the smoke config (the tiny Ding pairs and monolingual text):
both language models, the warm-started multitask fine-tuning, BLEU; a killed run resumes."""

import json
import os
import signal
import time

import pytest

from common.train.metrics import read_metrics
from tests.helpers import final_metrics, run_main, run_module, start_main

SMOKE = "--config=papers/seq2seq_pretraining/config.py:smoke"


@pytest.mark.long  # a minute of compilation on 2 cores; the warm start and the loss are tested in make test
@pytest.mark.slow
def test_smoke_run_pretrains_both_lms_then_fine_tunes_and_scores_bleu(tmp_path):
    final = final_metrics(run_main("seq2seq_pretraining", SMOKE, f"--workdir={tmp_path}").stdout)
    for side in ("source_lm", "target_lm"):
        assert 1.0 < final[f"{side}/perplexity"] < 500, final  # a 500-piece vocabulary: uniform is 500
    for split in ("validation", "test"):
        for method in ("greedy", "beam2"):
            assert 0.0 <= final[f"bleu/{split}_{method}"] <= 100.0
    for language in ("en", "de"):
        lm_dir = tmp_path / "pretrained" / "seed0" / f"lm_{language}"
        assert (lm_dir / "checkpoints").is_dir() and len(read_metrics(str(lm_dir))) > 0
    rows = read_metrics(str(tmp_path))
    logged = [row for row in rows if "train/translation_nll" in row]
    assert logged and {"train/source_lm_nll", "train/target_lm_nll"} <= logged[0].keys()
    bleu = json.loads((tmp_path / "bleu.json").read_text())
    assert bleu["metrics"] == pytest.approx(  # printed to 6 decimals
        {k: v for k, v in final.items() if k.startswith(("bleu/", "decode/"))}, abs=1e-6
    )
    assert bleu["samples"]["validation_greedy"][0]["reference"]


@pytest.mark.long
@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(tmp_path):
    """SIGTERM during fine-tuning saves and exits; the rerun resumes (the LMs already trained) and ends with the
    numbers of a run that was never interrupted."""
    longer = (SMOKE, "--config.train.num_steps=300", "--config.train.eval_every=300")
    whole = final_metrics(run_main("seq2seq_pretraining", *longer, f"--workdir={tmp_path / 'whole'}").stdout)
    process = start_main("seq2seq_pretraining", *longer, f"--workdir={tmp_path / 'killed'}")
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and "train/translation_nll" in metrics.read_text()):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    stopped_at = max(row["step"] for row in read_metrics(str(tmp_path / "killed")))
    assert stopped_at < 300 and os.listdir(tmp_path / "killed" / "checkpoints")
    resumed = final_metrics(run_main("seq2seq_pretraining", *longer, f"--workdir={tmp_path / 'killed'}").stdout)
    assert set(resumed) == set(whole)
    for name in ("source_lm/perplexity", "target_lm/perplexity", "eval/nll", "bleu/validation_greedy"):
        assert resumed[name] == pytest.approx(whole[name], rel=1e-4, abs=1e-4), name


@pytest.mark.long
@pytest.mark.slow
def test_bench_quick_prints_training_and_decoding_speed_as_json():
    result = run_module("papers.seq2seq_pretraining.bench", "--quick", "--json", "--steps=3", "--sentences=8")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["config"] == "smoke"
    for key in ("train_tokens_per_s", "train_steps_per_s", "greedy_sentences_per_s", "beam4_sentences_per_s"):
        assert row[key] > 0, key
