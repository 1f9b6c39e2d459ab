"""Re-trains the search's best equations and backprop over seeds at a short, a long and a converged budget; writes
the table, the learning curves (of the longest runs) and a verdict on the paper's claim into the README.

  python -m papers.backprop_evolution.reproduce [--sweep configs/sweeps/backprop_evolution.py] [--workdir DIR]

The claim: some equations train faster than backprop at short training times and are about even at convergence.
Each budget is its own run with its own cosine schedule (train.num_steps), trained on train[:-5000]; a run reports
test accuracy and the accuracy on the held-out validation split the search scored children on. The long runs log
test accuracy along the way (the learning curves). Finished runs are only re-evaluated, so an interrupted
reproduction resumes.
"""

import os
import statistics
from collections.abc import Sequence

from common import app, report, results, sweep
from common.train import loop
from common.train.metrics import read_metrics
from papers.backprop_evolution import search, search_space, train

SWEEP_FILE = "configs/sweeps/backprop_evolution.py"
PLOT = "learning_curves.png"
BLOCK = "reproduce"
RULE, STEPS = "model.rule", "train.num_steps"
BUDGET_NAMES = {2: ["short", "long"], 3: ["short", "long", "converged"]}  # by the number of budgets in a sweep
# The paper's claim (abstract; its results table was not retrieved).
PAPER_CLAIM = "several equations train faster than backprop at short training times, about the same at convergence"
OUTCOMES = {"ahead": "better than", "behind": "worse than", "level": "on par with"}


def train_or_diverge(config, workdir: str) -> dict:
    """train.train_and_evaluate, with a run whose loss turned non-finite recorded as diverged (accuracies NaN)
    instead of ending the reproduction: an equation that diverges is a result."""
    try:
        return train.train_and_evaluate(config, workdir)
    except loop.NonFiniteLossError as error:
        print(f"diverged: {error}", flush=True)
        return {"eval/accuracy": float("nan"), "validation/accuracy": float("nan"), "diverged": 1.0}


def rule_name(spec: str) -> str:
    return (
        "backprop"
        if spec in ("backprop", search_space.BACKPROP)
        else search_space.readable_name(search_space.from_spec(spec))
    )


def summarise(results: Sequence[tuple[dict, dict]]) -> dict[tuple[int, str], dict[str, list[float]]]:
    """(steps, rule name) -> {"test": [...], "validation": [...], "diverged": [...]}: the accuracies of the runs
    that finished (one per seed) and one entry per run that diverged."""
    table: dict[tuple[int, str], dict[str, list[float]]] = {}
    for point, metrics in results:
        cell = table.setdefault(
            (int(point[STEPS]), rule_name(point[RULE])), {"test": [], "validation": [], "diverged": []}
        )
        if metrics.get("diverged"):
            cell["diverged"].append(1.0)
        else:
            cell["test"].append(metrics["eval/accuracy"])
            cell["validation"].append(metrics["validation/accuracy"])
    return table


def _mean(values: Sequence[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _spread(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _percent(values: Sequence[float]) -> str:
    return sweep.mean_and_spread_percent(values) if values else "-"


def render_table(cells: dict[tuple[int, str], dict[str, list[float]]]) -> str:
    rows = []
    for steps in sorted({s for s, _ in cells}):
        backprop = cells.get((steps, "backprop"))
        for (s, name), values in sorted(cells.items(), key=lambda kv: -_mean(kv[1]["test"] or [0.0])):
            if s != steps:
                continue
            delta = 100 * (_mean(values["test"]) - _mean(backprop["test"])) if backprop else float("nan")
            rows.append(
                [
                    steps,
                    f"`{search.markdown_cell(name)}`",
                    _percent(values["validation"]),
                    _percent(values["test"]),
                    "-" if delta != delta else f"{delta:+.2f}",
                    len(values["test"]),
                    len(values["diverged"]),
                ]
            )
    return report.markdown_table(
        [
            "steps",
            "rule (delta =)",
            "validation acc. (%)",
            "test acc. (%)",
            "test vs backprop (points)",
            "seeds finished",
            "seeds diverged",
        ],
        rows,
    )


def comparisons(cells: dict[tuple[int, str], dict[str, list[float]]]) -> list[dict]:
    """Per budget that has backprop runs: {"steps", "label", "rules": [...]}, each rule {"name", "outcome"
    (OUTCOMES' words, or "diverged" in every seed), "delta" and "margin" (test accuracy vs backprop and the larger
    seed sd, fractions), "diverged", "runs"}."""
    budgets = sorted({s for s, _ in cells})
    found = []
    for steps, label in zip(budgets, BUDGET_NAMES.get(len(budgets), budgets), strict=False):
        backprop = cells.get((steps, "backprop"))
        if backprop is None:
            continue
        bp_mean, bp_sd = _mean(backprop["test"]), _spread(backprop["test"])
        rules = []
        for (s, name), values in cells.items():
            if s != steps or name == "backprop":
                continue
            runs = len(values["diverged"]) + len(values["test"])
            if not values["test"]:
                rules.append({"name": name, "outcome": "diverged", "diverged": runs, "runs": runs})
                continue
            delta, margin = _mean(values["test"]) - bp_mean, max(_spread(values["test"]), bp_sd)
            outcome = OUTCOMES[results.gap_against_spread(delta, margin)]
            rules.append(
                {
                    "name": name,
                    "outcome": outcome,
                    "delta": delta,
                    "margin": margin,
                    "diverged": len(values["diverged"]),
                    "runs": runs,
                }
            )
        found.append({"steps": steps, "label": label, "rules": rules})
    return found


def verdict(cells: dict[tuple[int, str], dict[str, list[float]]]) -> str:
    """Plain sentences: per budget, which rules beat backprop by more than the larger seed spread, and which are
    within it (parity)."""
    return "\n".join(
        f"- {budget['label']} budget ({budget['steps']} steps): "
        + "; ".join(_rule_phrase(rule, sentence=True) for rule in budget["rules"])
        + "."
        for budget in comparisons(cells)
    )


def _rule_phrase(rule: dict, sentence: bool) -> str:
    """One rule of `comparisons` against backprop: in the README's sentences (`sentence`, with "is" and the count
    of diverged seeds) or in a claims record's terser list."""
    if rule["outcome"] == "diverged":
        return f"`{rule['name']}` diverged in every seed"
    diverged = f", diverged in {rule['diverged']} of {rule['runs']} seeds" if sentence and rule["diverged"] else ""
    return (
        f"`{rule['name']}` {'is ' if sentence else ''}{rule['outcome']} backprop ({100 * rule['delta']:+.2f} points, "
        f"spread {100 * rule['margin']:.2f}{diverged})"
    )


def _describe(rules: list[dict]) -> str:
    return "; ".join(_rule_phrase(rule, sentence=False) for rule in rules)


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """Faster at the shortest budget (no plateau needed: the claim is about stopping early) and on par at the
    longest (gated on the test-accuracy curves of that budget's finished runs reaching a plateau), from the same
    comparisons as the verdict."""
    finished = reproduction.finished
    budgets = comparisons(summarise(finished.results))
    if not budgets:
        return [results.Claim(PAPER_CLAIM, PAPER_CLAIM, "no backprop runs", "not tested", "the sweep lacks backprop")]
    short, longest = budgets[0], budgets[-1]
    faster = [rule for rule in short["rules"] if rule["outcome"] == "better than"]
    outcomes = [
        results.Claim(
            claim="Some equations train faster than backprop at short training times",
            paper_numbers=PAPER_CLAIM + " (no numbers retrieved)",
            measured=f"{short['steps']} steps: {_describe(short['rules'])}",
            verdict="reproduced" if faster else "not reproduced at this scale",
            why="ahead of backprop by more than the seed spread: " + ", ".join(f"`{r['name']}`" for r in faster)
            if faster
            else "no equation is ahead of backprop by more than the seed spread at the short budget",
            figure=PLOT,
        )
    ]
    level = [rule for rule in longest["rules"] if rule["outcome"] == "on par with"]
    if level and len(level) == len(longest["rules"]):
        verdict_word, why = "reproduced", "every equation is within the seed spread of backprop"
    elif level:
        verdict_word, why = "partly", "some equations are within the seed spread of backprop, the others are not"
    else:
        verdict_word, why = "not reproduced at this scale", "no equation is within the seed spread of backprop"
    workdirs = results.workdirs_where(
        reproduction, lambda point, metrics: int(point[STEPS]) == longest["steps"] and not metrics.get("diverged")
    )
    plateau = results.runs_plateau(workdirs, "eval/accuracy")
    verdict_word, why = results.gate_on_plateau(verdict_word, why, *plateau)
    outcomes.append(
        results.Claim(
            claim="Equations perform about the same as backprop at convergence",
            paper_numbers=PAPER_CLAIM + " (no numbers retrieved)",
            measured=f"{longest['steps']} steps: {_describe(longest['rules'])}",
            verdict=verdict_word,
            why=why,
            figure=PLOT,
            plateau=plateau[0],
        )
    )
    return outcomes


def render_curves(results: Sequence[tuple[dict, dict]], root: str, path: str, title: str) -> None:
    """Test accuracy along the longest runs, mean over seeds per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = max(int(point[STEPS]) for point, _ in results)
    curves: dict[str, dict[int, list[float]]] = {}
    for point, _ in results:
        if int(point[STEPS]) != longest:
            continue
        metrics_file = os.path.join(root, sweep.point_name(point), "metrics.jsonl")
        rows = read_metrics(metrics_file) if os.path.exists(metrics_file) else []  # diverged before its first log
        curve = curves.setdefault(rule_name(point[RULE]), {})
        for row in rows:
            if "eval/accuracy" in row:
                curve.setdefault(int(row["step"]), []).append(100 * row["eval/accuracy"])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for name, curve in curves.items():
        steps = sorted(curve)
        ax.plot(steps, [statistics.mean(curve[s]) for s in steps], marker="o", markersize=3, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy (%), mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    cells = summarise(finished.results)
    base = finished.base
    setting = (
        f"{base.model.name} {list(base.model.hidden)} on {base.dataset.name} ({base.dataset.train_split}), batch "
        f"{base.dataset.batch_size}, {base.optimizer.name} lr {base.optimizer.learning_rate} cosine"
    )
    render_curves(finished.results, reproduction.workdir, reproduction.plot_path(PLOT), setting)
    # The provenance's speed reads every run's metrics.jsonl; a run that diverged before its first log has none.
    logged = [
        (point, metrics)
        for point, metrics in finished.results
        if os.path.exists(os.path.join(reproduction.workdir, sweep.point_name(point), "metrics.jsonl"))
    ]
    provenance = sweep.provenance(
        reproduction.command, reproduction.sweep_file, reproduction.workdir, logged, setting, finished.minutes
    )
    if len(logged) < len(finished.results):
        provenance += f" {len(finished.results) - len(logged)} more run(s) diverged before their first log."
    return f"{render_table(cells)}\n\n![learning curves]({PLOT})\n\n{verdict(cells)}\n\n{provenance}"


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train_or_diverge, render, claims))
