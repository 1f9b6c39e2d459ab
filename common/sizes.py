"""Model sizes measured against the paper's table: parameters and FLOPs of the paper's own configurations.

Some claims are exact rather than statistical: "HaloNet H4 has 19.1M parameters", "SASA ResNet-50 needs 7.2B FLOPs".
A paper opts in with `PAPER_SIZES` in its config.py (variant -> (parameters in millions, FLOPs in billions) as its
table gives them, None where it gives none); `python -m common.sizes` builds each such variant abstractly (the
paper's `build_for_dry_run`: nothing allocated, so the ImageNet models count in seconds on a CPU), counts parameters
and FLOPs (`common.nn.counting`: one image, a multiply-add counted as 2), writes the table into the paper's README
block `model_sizes` and the claims to `papers/<paper>/results/model_sizes.json` for docs/results.md
(`python -m common.results`).
"""

import importlib
import os
import time
from collections.abc import Mapping, Sequence

from common import report, results

BLOCK = "model_sizes"
RECORD = "model_sizes.json"
TOLERANCE = 0.05  # a measured size within 5% of the paper's counts as the paper's model
# measured row key -> (unit, the paper's row key, the claim's word, the unit's name)
KINDS = {
    "params": (1e6, "paper_params_m", "parameter counts", "parameters (M)"),
    "flops": (1e9, "paper_flops_b", "FLOPs", "FLOPs (B)"),
}


def measure(paper: str, sizes: Mapping[str, tuple[float | None, float | None]]) -> list[dict]:
    """Counts every variant of `sizes` from papers/<paper>/config.py; one row per variant with the paper's numbers."""
    from common.nn import counting
    from common.sweep import load_config

    train = importlib.import_module(f"papers.{paper}.train")
    rows = []
    for variant, (paper_params_m, paper_flops_b) in sizes.items():
        model, input_shape = train.build_for_dry_run(load_config(f"papers/{paper}/config.py:{variant}"))
        rows.append(
            {
                "variant": variant,
                "input_shape": list(input_shape),
                "params": counting.count_params(model),
                "flops": counting.count_model_flops(model, tuple(input_shape)),
                "paper_params_m": paper_params_m,
                "paper_flops_b": paper_flops_b,
            }
        )
    return rows


def _diff(measured: float, reported: float | None) -> float | None:
    return None if reported is None else measured / reported - 1


def _percent(diff: float | None) -> str:
    return "" if diff is None else f"{100 * diff:+.1f}%"


def render(rows: Sequence[dict]) -> str:
    """The Markdown table of measured vs the paper's sizes, then the exact counts."""
    table = []
    for row in rows:
        params_m, flops_b = row["params"] / 1e6, row["flops"] / 1e9
        table.append(
            [
                row["variant"],
                "x".join(map(str, row["input_shape"])),
                f"{params_m:.2f}",
                "" if row["paper_params_m"] is None else f"{row['paper_params_m']:g}",
                _percent(_diff(params_m, row["paper_params_m"])),
                f"{flops_b:.2f}",
                "" if row["paper_flops_b"] is None else f"{row['paper_flops_b']:g}",
                _percent(_diff(flops_b, row["paper_flops_b"])),
            ]
        )
    header = ["variant", "input", "params (M)", "paper", "diff", "FLOPs (B)", "paper", "diff"]
    exact = ", ".join(f"{row['variant']} {row['params']} / {row['flops']}" for row in rows)
    return report.markdown_table(header, table) + f"\n\nExact counts (params / FLOPs): {exact}."


def _size_claim(rows: Sequence[dict], what: str) -> results.Claim | None:
    """One claim on `what` (a KINDS key) over every row the paper gives it for: reproduced if all are within
    TOLERANCE."""
    unit, key, label, unit_name = KINDS[what]
    compared = [(row["variant"], row[what] / unit, row[key]) for row in rows if row[key] is not None]
    if not compared:
        return None
    within = [variant for variant, measured, reported in compared if abs(_diff(measured, reported)) <= TOLERANCE]
    if len(within) == len(compared):
        verdict = "reproduced"
    else:
        verdict = "partly" if within else "not reproduced at this scale"
    worst = max(compared, key=lambda item: abs(_diff(item[1], item[2])))
    return results.Claim(
        claim=f"The models have the paper's {label}",
        paper_numbers=f"{unit_name}: " + ", ".join(f"{variant} {reported:g}" for variant, _, reported in compared),
        measured=f"{unit_name}: "
        + ", ".join(
            f"{variant} {measured:.2f} ({_percent(_diff(measured, reported))})"
            for variant, measured, reported in compared
        ),  # fmt: skip
        verdict=verdict,
        why=f"{len(within)} of {len(compared)} variants within {TOLERANCE:.0%} of the paper's {label}; the furthest: "
        f"{worst[0]} at {_percent(_diff(worst[1], worst[2]))}",
    )


def claims(rows: Sequence[dict]) -> list[results.Claim]:
    """The parameter and FLOP claims of a measured size table (a paper without FLOPs gets the parameter claim)."""
    return [claim for what in KINDS if (claim := _size_claim(rows, what)) is not None]


def papers_with_sizes(papers_dir: str) -> list[str]:
    """The paper folders whose config.py defines PAPER_SIZES."""
    return [
        paper
        for paper in results.paper_folders(papers_dir)
        if hasattr(importlib.import_module(f"papers.{paper}.config"), "PAPER_SIZES")
    ]


def write_paper(paper: str, papers_dir: str = "papers") -> str:
    """Measures one paper's PAPER_SIZES, writes its README block and results record; returns the block."""
    started = time.time()
    sizes = importlib.import_module(f"papers.{paper}.config").PAPER_SIZES
    rows = measure(paper, sizes)
    command = f"`python -m common.sizes --papers={paper}`"
    minutes = (time.time() - started) / 60
    text = (
        render(rows) + f"\n\nMeasured by {command} (abstract models: nothing allocated; one image; a multiply-add "
        f"counts as 2) on {report.machine_description()} in {minutes * 60:.0f} s."
    )
    report.replace_block(os.path.join(papers_dir, paper, "README.md"), BLOCK, text)
    record = results.record(claims(rows), f"papers/{paper}/config.py PAPER_SIZES", command, minutes)
    results.write_record(os.path.join(papers_dir, paper, "results", RECORD), record)
    return text


def main(argv: Sequence[str]) -> None:
    from absl import flags

    from common.errors import ConfigError

    if len(argv) > 1:
        raise ConfigError(f"unexpected positional arguments: {argv[1:]}; flags take the form --name=value")
    available = papers_with_sizes("papers")
    chosen = flags.FLAGS.papers or available
    for paper in chosen:
        if paper not in available:
            raise ConfigError(f"unknown paper {paper!r} for model sizes; valid choices: {', '.join(available)}")
        print(f"## {paper}\n{write_paper(paper)}\n", flush=True)


if __name__ == "__main__":
    from absl import flags

    from common import app

    flags.DEFINE_list("papers", [], "Papers to measure (default: every paper whose config.py has PAPER_SIZES).")
    app.run(main)
