"""One record per claim of a paper: what the paper says, what this repo measured, and whether it reproduces.

Every `papers/<paper>/reproduce.py` turns its finished sweep into `Claim`s (its `claims(reproduction)`), and
`common.sweep.reproduce_main` writes them to `papers/<paper>/results/<sweep stem>.json` beside the README block it
renders from the same runs. `python -m common.results [--output docs/results.md]` gathers every such file into one
report: a summary table, then per paper each claim with both sets of numbers, the verdict and why.

"Converged" is measured, not asserted: a verdict that compares final numbers of training runs passes through
`gate_on_plateau`, which refuses "reproduced" (and "partly") for runs whose learning curves `reached_plateau` says
were still moving.
"""

import dataclasses
import glob
import itertools
import json
import os
import shlex
import statistics
import sys
import textwrap
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from common import report
from common.registry import lookup
from common.train.metrics import read_metrics

VERDICTS = {
    "reproduced": "the measured numbers show what the paper claims",
    "partly": "some of the claim holds here, some does not",
    "not reproduced at this scale": "the measured numbers do not show it (at the scale this repo runs)",
    "not tested": "no measurement here decides it (yet)",
}
PLATEAU_TAIL = 0.25  # the last quarter of the steps
PLATEAU_SHARE = 0.1  # may move by at most a tenth of the whole curve's range


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim's outcome. `figure`: a file name beside the paper's README; `plateau`: whether the runs the
    verdict compares had levelled off (None where the claim does not rest on finished training: exact checks,
    short-budget comparisons)."""

    claim: str
    paper_numbers: str
    measured: str
    verdict: str
    why: str
    figure: str | None = None
    plateau: bool | None = None

    def __post_init__(self):
        lookup(VERDICTS, self.verdict, "verdict")
        if self.verdict == "reproduced" and self.plateau is False:
            raise ValueError(f"claim {self.claim!r}: 'reproduced' needs runs that reached a plateau")


def reached_plateau(
    steps: Sequence[float], values: Sequence[float], tail: float = PLATEAU_TAIL, share: float = PLATEAU_SHARE
) -> bool:
    """Whether a learning curve [N] has levelled off.

    Rule: fit a straight line to the points in the last `tail` of the step range; the change that line makes over
    the tail must be at most `share` of the whole curve's range (max - min of all values). A least-squares line,
    not the end points, so that eval noise in one point does not decide. Fewer than 3 points in the tail, or a
    non-finite value, cannot show a plateau (False); a curve that never moved (range 0) is flat (True).
    """
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(f"steps {steps.shape} and values {values.shape} must be two curves of one length")
    if len(steps) < 3 or not np.all(np.isfinite(values)):
        return False
    in_tail = _in_tail(steps, tail)
    if in_tail.sum() < 3:
        return False
    if values.max() == values.min():
        return True
    slope = np.polyfit(steps[in_tail], values[in_tail], 1)[0]
    tail_change = abs(slope) * (steps[-1] - steps[in_tail][0])
    whole = float(values.max() - values.min())
    return bool(tail_change <= share * whole)


def _in_tail(steps: np.ndarray, tail: float) -> np.ndarray:
    """Which of `steps` [N] lie in the last `tail` of the step range: [N] bool."""
    return steps >= steps[-1] - tail * (steps[-1] - steps[0])


def mean_curve(workdirs: Sequence[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean over runs of `metric` in their metrics.jsonl, at the steps every run logged it: steps [N], values
    [N]. Runs without a metrics file or without the metric give an empty curve."""
    curves = []
    for workdir in workdirs:
        path = os.path.join(workdir, "metrics.jsonl")
        rows = read_metrics(path) if os.path.exists(path) else []
        curves.append({row["step"]: row[metric] for row in rows if row.get(metric) is not None})
    common_steps = sorted(set.intersection(*(set(curve) for curve in curves))) if curves else []
    values = [statistics.mean(curve[step] for curve in curves) for step in common_steps]
    return np.asarray(common_steps, dtype=float), np.asarray(values, dtype=float)


def workdirs_where(reproduction, keep: Callable[[dict, dict], bool]) -> list[str]:
    """The workdirs of a common.sweep.Reproduction's runs whose (point, final metrics) pass `keep`."""
    from common.sweep import point_name  # common.sweep imports this module

    return [
        os.path.join(reproduction.workdir, point_name(point))
        for point, metrics in reproduction.finished.results
        if keep(point, metrics)
    ]


def plateau_metric(config) -> str:
    """The curve a plateau is judged on: test accuracy where the runs evaluate during training
    (config.train.eval_every), else the training loss (the only curve a final-evaluation-only run logs)."""
    return "eval/accuracy" if config.train.get("eval_every") else "train/loss"


def figure_names(reproduction, plot: str, curves: str) -> tuple[str, str | None]:
    """A sweep's figure file names from their `{sweep}` patterns: the final-numbers plot, and the learning curves
    (None where the runs did not evaluate during training, so there are none)."""
    stem = reproduction.stem
    evaluated = reproduction.finished.base.train.get("eval_every")
    return plot.format(sweep=stem), curves.format(sweep=stem) if evaluated else None


def plot_group_curves(
    reproduction,
    group: Callable[[dict], str],
    path: str,
    title: str,
    metric: str = "eval/accuracy",
    xlabel: str = "training step",
) -> None:
    """The figure a plateau verdict stands on: per group of runs (`group(point)` -> label), the mean over its runs
    (seeds) of `metric` along training (mean_curve); accuracies in percent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(group(point) for point, _ in reproduction.finished.results))  # sweep order
    scale = 100 if metric.endswith("accuracy") else 1
    below = scale != 100  # returns and losses fill the plot's corners: their legend goes under the axes
    fig, ax = plt.subplots(figsize=(7, 4 + 0.2 * len(labels) * below), dpi=120)
    for label in labels:
        workdirs = workdirs_where(reproduction, lambda point, _, label=label: group(point) == label)
        steps, values = mean_curve(workdirs, metric)
        ax.plot(steps, scale * values, marker="o", markersize=3, label=f"{label} ({len(workdirs)} runs)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric}{' (%)' if scale == 100 else ''}, mean over runs")
    ax.grid(alpha=0.3)
    if below:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=1)
    else:
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)  # long settings wrap, not clip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def runs_plateau(workdirs: Sequence[str], metric: str) -> tuple[bool, str]:
    """(whether the mean curve of `metric` over `workdirs` reached a plateau, a phrase with its numbers)."""
    steps, values = mean_curve(workdirs, metric)
    return curve_plateau(steps, values, f"mean {metric} of {len(workdirs)} run(s)")


def curve_plateau(steps: Sequence[float], values: Sequence[float], label: str) -> tuple[bool, str]:
    """(reached_plateau(steps [N], values [N]), a phrase saying how far the curve moved at its end)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(steps) < 3:
        return False, f"{label}: {len(steps)} logged point(s), too few to tell"
    in_tail = _in_tail(steps, PLATEAU_TAIL)
    tail_change = values[in_tail][-1] - values[in_tail][0]
    return reached_plateau(steps, values), (
        f"{label} moved {tail_change:+.4g} over the last {PLATEAU_TAIL:.0%} of {steps[-1]:g} steps, range "
        f"{values.max() - values.min():.4g}"
    )


def all_plateau(checks: Sequence[tuple[bool, str]]) -> tuple[bool, str]:
    """Several (plateau, phrase) pairs -> (all reached a plateau, the phrases joined)."""
    return all(plateau for plateau, _ in checks), "; ".join(detail for _, detail in checks)


def gate_on_plateau(verdict: str, why: str, plateau: bool, detail: str) -> tuple[str, str]:
    """The verdict a comparison of final numbers may claim: without a plateau a favourable verdict becomes "not
    tested" (the runs stopped before the claim could be judged); an unfavourable one stands, with the reason."""
    lookup(VERDICTS, verdict, "verdict")
    if plateau:
        return verdict, why
    reason = f"the runs had not reached a plateau ({detail})"
    if verdict in ("reproduced", "partly"):
        return "not tested", f"{reason}; at the last step: {why}"
    return verdict, f"{why}; {reason}"


def trend(values: Sequence[float], noise: float) -> str:
    """How `values` [N] (in the order of a growing setting, e.g. speed-ups over batch sizes) move, allowing each a
    factor `noise` of run-to-run spread: "rises" (the last above the first by more than the noise and none below
    the one before by more than it), "falls" (the last below the first by more than the noise), else "stays flat"."""
    steps = [later / earlier for earlier, later in itertools.pairwise(values)]
    if values[-1] > noise * values[0] and min(steps) >= 1 / noise:
        return "rises"
    if values[-1] < values[0] / noise:
        return "falls"
    return "stays flat"


def gap_against_spread(gap: float, spread: float) -> str:
    """'ahead', 'behind' or 'level': whether a difference of means is larger than the seed spread."""
    if gap > spread:
        return "ahead"
    if gap < -spread:
        return "behind"
    return "level"


def factor_gap(pairs: Sequence[tuple[dict, dict]], key: str, leader, other, metric: str = "eval/accuracy") -> dict:
    """Runs with `key` = `leader` against runs with `key` = `other` (pooled over the other factors and seeds):
    {"leader", "other" (means), "gap", "spread" (the larger sd), "word" (gap_against_spread)}; empty without runs
    of both."""
    from common.sweep import factor_values  # common.sweep imports this module

    values = factor_values(pairs, key, metric)
    if leader not in values or other not in values:
        return {}
    return compare_groups(values[leader], values[other], ("leader", "other"))


def compare_groups(a: Sequence[float], b: Sequence[float], names: tuple[str, str]) -> dict:
    """Group `a` against group `b` (seeds or pooled runs): {names[0], names[1] (the means), "gap", "spread" (the
    larger sd), "word" (gap_against_spread)}."""
    spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (a, b))
    gap = statistics.mean(a) - statistics.mean(b)
    return {
        names[0]: statistics.mean(a),
        names[1]: statistics.mean(b),
        "gap": gap,
        "spread": spread,
        "word": gap_against_spread(gap, spread),
    }


def lead_verdict(word: str, leader: str) -> tuple[str, str]:
    """(verdict, why) on a claim that `leader` comes out ahead, from gap_against_spread's word."""
    outcomes = {
        "ahead": ("reproduced", f"{leader} is ahead by more than the seed spread"),
        "level": ("not reproduced at this scale", f"{leader} is level with it: the gap is within the seed spread"),
        "behind": ("not reproduced at this scale", f"{leader} is behind by more than the seed spread (opposite sign)"),
    }
    return lookup(outcomes, word, "comparison")


def factor_claim(
    pairs: Sequence[tuple[dict, dict]],
    key: str,
    leader,
    other,
    claim: str,
    paper_numbers: str,
    plateau: tuple[bool, str],
    figure: str | None,
    pooled: bool = False,
) -> Claim:
    """The claim that runs with `key` = `leader` reach a higher mean test accuracy than runs with `key` = `other`
    (factor_gap), its verdict gated on `plateau` (runs_plateau / all_plateau). `pooled`: the sweep has other
    factors, pooled into both means (the spread is then over them too, not over seeds alone)."""
    found = factor_gap(pairs, key, leader, other)
    if not found:
        return Claim(claim, paper_numbers, f"no runs of {key} = {leader} and {other}", "not tested", "-")
    verdict, why = gate_on_plateau(*lead_verdict(found["word"], f"{leader}"), *plateau)
    mean = "mean test accuracy pooled over the other factors:" if pooled else "mean test accuracy"
    measured = (
        f"{mean} {100 * found['leader']:.2f}% ({leader}) vs {100 * found['other']:.2f}% ({other}), "
        f"{100 * found['gap']:+.2f} points, larger {'sd' if pooled else 'seed sd'} {100 * found['spread']:.2f}"
    )
    return Claim(claim, paper_numbers, measured, verdict, why, figure, plateau[0])


def rerun_command(module: str) -> str:
    """This process's invocation of `python -m module`, with its arguments, in backticks: a record's command."""
    return f"`{shlex.join(['python', '-m', module, *sys.argv[1:]])}`"


def record(
    claims: Sequence[Claim], sweep_file: str, command: str, minutes: float, run_minutes: float | None = None
) -> dict:
    """The JSON object of one finished sweep's claims, with where and when they were measured. `minutes`: the
    invocation that wrote it; `run_minutes`: the runs' own time summed (where the runner recorded it), which a
    rerun that only re-reads finished runs would otherwise hide."""
    data = {
        "sweep": sweep_file,
        "command": command,
        "machine": report.machine_description(),
        "minutes": round(minutes, 1),
        "date": time.strftime("%Y-%m-%d"),
        "claims": [dataclasses.asdict(claim) for claim in claims],
    }
    if run_minutes:
        data["run_minutes"] = round(run_minutes, 1)
    return data


def write_record(path: str, data: dict) -> None:
    """Writes `data` as sorted, indented JSON (process 0 only: one record per job, as report.replace_block)."""
    if jax.process_index() != 0:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def paper_folders(papers_dir: str) -> list[str]:
    """Names of the paper folders (those with an __init__.py), sorted."""
    return sorted(
        name for name in os.listdir(papers_dir) if os.path.exists(os.path.join(papers_dir, name, "__init__.py"))
    )


def load_records(papers_dir: str, paper: str) -> list[tuple[str, dict]]:
    """(file name, record) of every results/*.json of a paper, sorted by file name."""
    paths = sorted(glob.glob(os.path.join(papers_dir, paper, "results", "*.json")))
    records = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for claim in data["claims"]:
            Claim(**claim)  # a hand-edited file with a bad verdict fails here, naming it
        records.append((os.path.basename(path), data))
    return records


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def build_report(papers_dir: str, output: str) -> str:
    """The Markdown of the results report; figure links are relative to `output`'s folder."""
    link_root = os.path.relpath(papers_dir, os.path.dirname(os.path.abspath(output)))
    sections, summary = [], []
    for paper in paper_folders(papers_dir):
        records = load_records(papers_dir, paper)
        lines = [f"## {paper}"]
        if not records:
            summary.append([paper, "-", "-", "not tested"])
            lines.append(f"Not tested: run `make reproduce-{paper.replace('_', '-')}`.")
        for name, data in records:
            lines.append(f"### `{name}` (from `{data['sweep']}`)")
            for claim in (Claim(**claim) for claim in data["claims"]):
                summary.append([paper, f"`{name}`", _cell(claim.claim), claim.verdict])
                lines.append(_render_claim(claim, paper, link_root))
            resumable = " (runs already finished in its workdir are only re-read or re-evaluated)"
            runs = f"; the runs took {data['run_minutes']:g} min summed over runs" if "run_minutes" in data else ""
            lines.append(
                f"Measured by {data['command']} on {data['machine']}, {data['date']}{runs}; that invocation took "
                f"{data['minutes']:g} min{resumable if data['sweep'].startswith('configs/sweeps/') else ''}."
            )
        sections.append("\n\n".join(lines))
    head = (
        "# Results: what each paper claims, what this repo measured\n\n"
        "Generated by `python -m common.results` from `papers/*/results/*.json` (each written by the paper's "
        "`reproduce.py` from its finished runs). Verdicts: "
        + "; ".join(f"**{verdict}**: {meaning}" for verdict, meaning in VERDICTS.items())
        + f". A verdict on final numbers needs runs whose learning curve reached a plateau (the last "
        f"{PLATEAU_TAIL:.0%} of the steps moved by at most {PLATEAU_SHARE:.0%} of the curve's range, "
        "`common.results.reached_plateau`)."
    )
    table = report.markdown_table(["paper", "record", "claim", "verdict"], summary)
    return "\n\n".join([head, table, *sections]) + "\n"


def _render_claim(claim: Claim, paper: str, link_root: str) -> str:
    plateau = {None: "", True: " Runs reached a plateau.", False: " Runs had not reached a plateau."}[claim.plateau]
    lines = [
        f"**{claim.claim}**: {claim.verdict}.",
        f"- paper: {claim.paper_numbers}",
        f"- here: {claim.measured}",
        f"- why: {claim.why}.{plateau}",
    ]
    if claim.figure:
        lines.append(f"- figure: [{claim.figure}]({link_root}/{paper}/{claim.figure})")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    """Writes --output from the records under --papers."""
    from absl import flags

    from common.errors import ConfigError

    if len(argv) > 1:
        raise ConfigError(f"unexpected positional arguments: {argv[1:]}; flags take the form --name=value")
    output = flags.FLAGS.output
    text = build_report(flags.FLAGS.papers, output)
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output, "w") as f:
        f.write(text)
    print(f"wrote {output}", flush=True)


if __name__ == "__main__":
    from absl import flags

    from common import app

    flags.DEFINE_string("output", "docs/results.md", "The report to write.")
    flags.DEFINE_string("papers", "papers", "The folder whose <paper>/results/*.json records to read.")
    app.run(main)
