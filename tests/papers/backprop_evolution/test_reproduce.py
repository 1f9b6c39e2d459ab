"""The re-training report: table, verdict and learning curves from (point, metrics) pairs and metrics.jsonl files."""

import json

from common import sweep
from papers.backprop_evolution import reproduce

RULE = "rule:min.0.x.5.tanh+left.7.x.0.signed_sqrt"  # min(g, tanh(w_rms))


def _results():
    """Backprop vs one equation: the equation ahead by 5 points at 300 steps, level at 1500."""
    results = []
    for steps, equation_test in ((300, [0.85, 0.86, 0.87]), (1500, [0.88, 0.89, 0.87])):
        for seed in range(3):
            for rule, test in (("backprop", [0.80, 0.81, 0.82][seed] if steps == 300 else 0.88), (RULE, None)):
                value = equation_test[seed] if test is None else test
                point = {"model.rule": rule, "train.num_steps": steps, "seed": seed}
                results.append((point, {"eval/accuracy": value, "validation/accuracy": value + 0.01}))
    point = {"model.rule": "rule:mul.0.sign.3.x", "train.num_steps": 1500, "seed": 0}
    results.append((point, {"eval/accuracy": float("nan"), "validation/accuracy": float("nan"), "diverged": 1.0}))
    return results


def test_table_and_verdict():
    cells = reproduce.summarise(_results())
    assert cells[(300, "backprop")]["test"] == [0.80, 0.81, 0.82]
    assert cells[(1500, "min(g, tanh(w_rms))")]["validation"] == [0.89, 0.90, 0.88]
    table = reproduce.render_table(cells)
    assert "| 300 | `min(g, tanh(w_rms))` | 87.00 ± 1.00 | 86.00 ± 1.00 | +5.00 | 3 | 0 |" in table
    text = reproduce.verdict(cells)
    assert "short budget (300 steps): `min(g, tanh(w_rms))` is better than backprop (+5.00 points" in text
    assert "long budget (1500 steps): `min(g, tanh(w_rms))` is on par with backprop (+0.00 points" in text
    assert "`dact * sign(g)` diverged in every seed" in text
    assert "| 1500 | `dact * sign(g)` | - | - | - | 0 | 1 |" in table


def test_learning_curves_are_drawn_from_the_long_runs(tmp_path):
    results = _results()
    for point, _ in results[:-1]:
        folder = tmp_path / sweep.point_name(point)
        folder.mkdir()
        rows = [
            {"step": s, "eval/accuracy": 0.5 + s / 4000} for s in range(150, int(point["train.num_steps"]) + 1, 150)
        ]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = tmp_path / "curves.png"
    reproduce.render_curves(results, str(tmp_path), str(path), "test")
    assert path.stat().st_size > 1000


def test_three_budgets_are_named_short_long_and_converged():
    results = _results()
    for seed in range(3):
        for rule in ("backprop", RULE):
            point = {"model.rule": rule, "train.num_steps": 8000, "seed": seed}
            results.append((point, {"eval/accuracy": 0.9, "validation/accuracy": 0.91}))
    text = reproduce.verdict(reproduce.summarise(results))
    assert "- short budget (300 steps)" in text and "- long budget (1500 steps)" in text
    assert "- converged budget (8000 steps): `min(g, tanh(w_rms))` is on par with backprop (+0.00 points" in text
