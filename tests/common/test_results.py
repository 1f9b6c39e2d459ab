"""Claims, the plateau rule, papers' claims on fabricated finished sweeps, and the results report."""

import json
import os

import numpy as np
import pytest
from ml_collections import ConfigDict

from common import results, sweep
from common.registry import UnknownNameError
from papers.low_rank_local import reproduce as lrlc
from papers.swish import reproduce as swish

STEPS = np.arange(0, 1001, 50)


def falling(steps):
    return 2.0 * np.exp(-steps / 500.0)  # still dropping at the end


def levelled(steps):
    return 2.0 * np.exp(-steps / 60.0) + 0.3


def test_a_flat_tail_is_a_plateau_and_a_still_falling_curve_is_not():
    assert results.reached_plateau(STEPS, levelled(STEPS))
    assert not results.reached_plateau(STEPS, falling(STEPS))
    noise = np.random.default_rng(0).normal(0, 0.01, STEPS.shape)
    assert results.reached_plateau(STEPS, levelled(STEPS) + noise)  # the fitted line, not one noisy end point


def test_too_few_points_or_non_finite_values_cannot_show_a_plateau():
    assert not results.reached_plateau([0, 100], [1.0, 1.0])
    assert not results.reached_plateau(STEPS, np.where(STEPS == 1000, np.nan, levelled(STEPS)))
    assert results.reached_plateau(STEPS, np.ones_like(STEPS, dtype=float))  # never moved: flat
    with pytest.raises(ValueError, match="one length"):
        results.reached_plateau([0, 1, 2], [1.0, 2.0])


def test_a_bad_verdict_is_refused_naming_the_choices():
    with pytest.raises(UnknownNameError, match="'confirmed'.*not reproduced at this scale, not tested, partly"):
        results.Claim("c", "p", "m", "confirmed", "w")
    with pytest.raises(ValueError, match="plateau"):
        results.Claim("c", "p", "m", "reproduced", "w", plateau=False)


def test_without_a_plateau_a_favourable_verdict_becomes_not_tested():
    assert results.gate_on_plateau("reproduced", "ahead", True, "d") == ("reproduced", "ahead")
    verdict, why = results.gate_on_plateau("reproduced", "ahead", False, "moved 0.3")
    assert verdict == "not tested" and why.startswith("the runs had not reached a plateau (moved 0.3)")
    verdict, why = results.gate_on_plateau("not reproduced at this scale", "behind", False, "moved 0.3")
    assert verdict == "not reproduced at this scale" and "plateau" in why


def fabricate(tmp_path, runs, curve):
    """A Reproduction of (point, final metrics) pairs whose runs logged `curve(steps)` as train/loss."""
    for point, _ in runs:
        workdir = tmp_path / sweep.point_name(point)
        workdir.mkdir()
        rows = [
            {"step": int(step), "train/loss": float(value)} for step, value in zip(STEPS, curve(STEPS), strict=True)
        ]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = ConfigDict({"train": {"eval_every": 0}})  # final evaluation only: plateaus are read off train/loss
    finished = sweep.FinishedSweep(None, base, runs, 1.0, None)
    return sweep.Reproduction(finished, "sweep.py", str(tmp_path), str(tmp_path / "README.md"), "`cmd`")


def swish_runs(swish_accuracies, relu_accuracies):
    runs = []
    for name, accuracies in (("swish", swish_accuracies), ("swish1", swish_accuracies), ("relu", relu_accuracies)):
        runs += [({"model.activation": name, "seed": s}, {"eval/accuracy": a}) for s, a in enumerate(accuracies)]
    return runs


@pytest.mark.parametrize(
    "swish_accuracies, relu_accuracies, curve, expected",
    [
        ([0.90, 0.91, 0.92], [0.85, 0.86, 0.87], levelled, "reproduced"),
        ([0.85, 0.86, 0.87], [0.90, 0.91, 0.92], levelled, "not reproduced at this scale"),  # the gap's sign
        ([0.88, 0.90, 0.89], [0.89, 0.88, 0.90], levelled, "not reproduced at this scale"),  # within the spread
        ([0.90, 0.91, 0.92], [0.85, 0.86, 0.87], falling, "not tested"),  # ahead, but not converged
    ],
)
def test_swish_claims(tmp_path, swish_accuracies, relu_accuracies, curve, expected):
    claims = swish.claims(fabricate(tmp_path, swish_runs(swish_accuracies, relu_accuracies), curve))
    assert [claim.claim for claim in claims] == ["swish beats ReLU", "swish1 beats ReLU"]
    assert {claim.verdict for claim in claims} == {expected}
    assert all(claim.plateau is (curve is levelled) for claim in claims)
    if curve is falling:
        assert claims[0].why.startswith("the runs had not reached a plateau")


def lrlc_runs(rank_accuracy, wide_accuracy=0.80):
    runs = []
    for seed in range(2):
        runs += [
            ({"seed": seed, "model.layer": "conv"}, {"eval/accuracy": 0.80 + 0.005 * seed}),
            ({"seed": seed, "model.layer": "lc"}, {"eval/accuracy": 0.78 + 0.005 * seed}),
            ({"seed": seed, "model.layer": "wide_conv"}, {"eval/accuracy": wide_accuracy + 0.005 * seed}),
            ({"seed": seed, "model.layer": "lrlc", "model.rank": 2}, {"eval/accuracy": rank_accuracy - 0.02}),
            ({"seed": seed, "model.layer": "lrlc", "model.rank": 4}, {"eval/accuracy": rank_accuracy + 0.005 * seed}),
        ]
    return runs


@pytest.mark.parametrize(
    "rank_accuracy, curve, expected",
    [
        (0.83, levelled, "reproduced"),
        (0.79, levelled, "not reproduced at this scale"),  # behind conv
        (0.802, levelled, "not reproduced at this scale"),  # ahead of conv by less than the seed sd
        (0.83, falling, "not tested"),
    ],
)
def test_low_rank_local_claims(tmp_path, rank_accuracy, curve, expected):
    reproduction = fabricate(tmp_path, lrlc_runs(rank_accuracy), curve)
    reproduction.finished.base.model = ConfigDict({"rank": 4})  # wide_conv is matched to K = 4
    rank_claim, wide_claim = lrlc.claims(reproduction)
    assert rank_claim.verdict == wide_claim.verdict == expected
    assert rank_claim.measured.startswith("LRLC K=4 ") and "over conv" in rank_claim.measured
    assert "over wide conv" in wide_claim.measured and rank_claim.figure == "sweep.png"
    assert rank_claim.plateau is (curve is levelled)


def test_low_rank_local_claims_without_their_rows_are_not_tested(tmp_path):
    runs = [(point, metrics) for point, metrics in lrlc_runs(0.83) if point["model.layer"] in ("lrlc", "conv")]
    reproduction = fabricate(tmp_path, runs, levelled)
    reproduction.finished.base.model = ConfigDict({"rank": 4})
    assert [claim.verdict for claim in lrlc.claims(reproduction)] == ["not tested", "not tested"]


def write_papers(root):
    for name in ("alpha", "beta", "gamma"):
        os.makedirs(root / name)
        (root / name / "__init__.py").write_text("")
    claim = results.Claim("A beats B", "+2.0", "+1.5", "reproduced", "ahead", "plot.png", True)
    record = {**results.record([claim], "configs/sweeps/alpha.py", "`cmd`", 3.0, 46.0), "date": "2026-01-01"}
    results.write_record(str(root / "alpha" / "results" / "alpha.json"), record)


def test_the_report_lists_every_paper_folder_and_rebuilds_byte_for_byte(tmp_path):
    write_papers(tmp_path)
    output = str(tmp_path / "docs" / "results.md")
    text = results.build_report(str(tmp_path), output)
    assert text == results.build_report(str(tmp_path), output)
    assert "| alpha | `alpha.json` | A beats B | reproduced |" in text
    assert "## beta\n\nNot tested: run `make reproduce-beta`." in text
    assert "[plot.png](../alpha/plot.png)" in text
    assert "2026-01-01; the runs took 46 min summed over runs; that invocation took 3 min" in text
    assert text.index("## alpha") < text.index("## beta") < text.index("## gamma")


def test_the_repos_report_names_every_paper(tmp_path):
    text = results.build_report("papers", str(tmp_path / "results.md"))
    for paper in results.paper_folders("papers"):
        assert f"## {paper}\n" in text


def test_a_record_with_a_bad_verdict_fails_naming_it(tmp_path):
    write_papers(tmp_path)
    path = tmp_path / "alpha" / "results" / "alpha.json"
    data = json.loads(path.read_text())
    data["claims"][0]["verdict"] = "sort of"
    path.write_text(json.dumps(data))
    with pytest.raises(UnknownNameError, match="'sort of'"):
        results.build_report(str(tmp_path), str(tmp_path / "results.md"))


def test_factor_claim_judges_the_gap_against_the_spread_and_gates_on_the_plateau():
    pairs = [({"k": "a", "seed": s}, {"eval/accuracy": 0.9 + 0.001 * s}) for s in range(3)]
    pairs += [({"k": "b", "seed": s}, {"eval/accuracy": 0.8 + 0.001 * s}) for s in range(3)]
    ahead = results.factor_claim(pairs, "k", "a", "b", "a beats b", "paper", (True, "flat"), "x.png")
    assert ahead.verdict == "reproduced" and "+10.00 points, larger seed sd 0.10" in ahead.measured
    moving = results.factor_claim(pairs, "k", "a", "b", "a beats b", "paper", (False, "moving"), None, pooled=True)
    assert moving.verdict == "not tested" and "pooled over the other factors" in moving.measured
    behind = results.factor_claim(pairs, "k", "b", "a", "b beats a", "paper", (True, "flat"), None)
    assert behind.verdict == "not reproduced at this scale"
    missing = results.factor_claim(pairs, "k", "a", "c", "a beats c", "paper", (True, "flat"), None)
    assert missing.verdict == "not tested" and missing.measured == "no runs of k = a and c"


def test_plateau_metric_is_test_accuracy_where_runs_evaluate_during_training():
    assert results.plateau_metric(ConfigDict({"train": {"eval_every": 125}})) == "eval/accuracy"
    assert results.plateau_metric(ConfigDict({"train": {"eval_every": 0}})) == "train/loss"


def test_group_curves_plot_one_mean_curve_per_group(tmp_path, monkeypatch):
    runs = [({"model.activation": name, "seed": seed}, {}) for name in ("relu", "swish") for seed in (0, 1)]
    reproduction = fabricate(tmp_path, runs, lambda steps: 1 - np.exp(-steps / 100))
    for point, _ in runs:  # eval/accuracy beside the loss, a different level per seed
        path = tmp_path / sweep.point_name(point) / "metrics.jsonl"
        rows = [
            json.loads(line) | {"eval/accuracy": 0.5 + 0.1 * point["seed"]} for line in path.read_text().splitlines()
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    drawn = []
    monkeypatch.setattr("matplotlib.axes.Axes.plot", lambda self, x, y, **kw: drawn.append((list(y), kw["label"])))
    results.plot_group_curves(reproduction, lambda point: point["model.activation"], str(tmp_path / "c.png"), "t")
    assert [label for _, label in drawn] == ["relu (2 runs)", "swish (2 runs)"]  # in sweep order
    np.testing.assert_allclose([values for values, _ in drawn], 55.0)  # percent, the mean over the seeds
    assert (tmp_path / "c.png").stat().st_size > 0
