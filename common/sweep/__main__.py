"""`python -m common.sweep run SWEEP [--address auto|HOST:PORT] [--max-concurrent N] [--retries N] [--workdir DIR]`

Runs every trial of the sweep file SWEEP (a configs/sweeps/*.py) on Ray, each one trained as the paper's main.py
would in <workdir>/<point>, and prints a table of every trial's final metrics; exits with status 1 if a trial failed
after its retries (the others still run to their end). Without --address a local Ray starts with --max-concurrent CPUs
(default: all). Default workdir: workdirs/<paper of the sweep's SWEEP>/<sweep file's stem>, the one its paper's
reproduce.py reads, so `python -m papers.<paper>.reproduce` afterwards only re-reads the finished runs into the
README's table (docs/sweeps.md).
"""

import logging
import os
import sys

from absl import flags

from common import app, report
from common.errors import ConfigError
from common.sweep import define_ray_flags, load_sweep, point_name, ray_runner, trials

FLAGS = flags.FLAGS
COMMANDS = {"run": None}


def default_workdir(sweep_file: str) -> str:
    stem = os.path.splitext(os.path.basename(sweep_file))[0]
    return os.path.join("workdirs", app.paper_name(load_sweep(sweep_file).config.partition(":")[0]), stem)


def summary(outcome: ray_runner.Outcome) -> str:
    """One row per trial: its point, then its final metrics (failed trials: the last line of their error)."""
    metric_names = sorted({name for _, metrics in outcome.results for name in metrics})
    rows = [[point_name(point), *(f"{metrics.get(n, float('nan')):.4g}" for n in metric_names)]
            for point, metrics in outcome.results]  # fmt: skip
    rows += [[trial.name, f"FAILED: {error.splitlines()[-1]}"] for trial, error in outcome.failed]
    return report.markdown_table(["trial", *metric_names], rows)


def main(argv) -> None:
    if len(argv) != 3 or argv[1] not in COMMANDS:
        raise ConfigError(f"usage: python -m common.sweep run SWEEP [flags]; got {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.getLogger("absl").setLevel(logging.WARNING)  # the driver imports no JAX: app.prepare is not needed
    sweep_file = argv[2]
    root = FLAGS.workdir or default_workdir(sweep_file)
    outcome = ray_runner.run_trials(
        trials.sweep_trials(sweep_file, root), FLAGS.address, FLAGS["max-concurrent"].value, FLAGS.retries
    )
    print(summary(outcome), flush=True)
    print(f"{len(outcome.results)} finished ({outcome.skipped} before this run), {len(outcome.failed)} failed; "
          f"{outcome.ran} trial attempts in {outcome.workers} worker processes; workdir {root}",
          flush=True)  # fmt: skip
    if outcome.failed:
        sys.exit(1)


if __name__ == "__main__":
    define_ray_flags()
    flags.DEFINE_string("workdir", None, "Where the trials go; default workdirs/<paper>/<sweep file's stem>.")
    app.run(main)
