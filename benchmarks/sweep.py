"""Sweep runners: the same 4-trial smoke sweep (Swish and LRLC smoke configs, 2 seeds each) run one after another
in this process (common.sweep.run_sweep, what reproduce.py does by default) and on a local Ray with 2 concurrent
trials, each trained in a Ray worker that runs trial after trial (common.sweep.ray_runner), in one run.

Overhead per trial on Ray = (2 x Ray wall time - sequential wall time) / trials: the core-seconds each trial costs
beyond the in-process path with both cores busy (each worker's own imports, data loading and compilations, which the
sequential path pays once, and Ray's scheduling), so 0 means Ray's 2 slots exactly halve the sequential time.

python -m benchmarks.run_all --only sweep
"""

import importlib
import os
import statistics
import tempfile
import time

from common import app, report, sweep
from common.sweep import ray_runner, trials

GRIDS = (
    sweep.Sweep("papers/swish/config.py:smoke", {"model.activation": ["relu"], "seed": [0, 1]}),
    sweep.Sweep("papers/low_rank_local/config.py:smoke", {"model.layer": ["lrlc"], "seed": [0, 1]}),
)
CONCURRENT = 2


def sequential(root: str) -> dict:
    """Every grid through run_sweep in this process; wall time and (point, metrics) pairs."""
    started = time.perf_counter()
    results = []
    for grid in GRIDS:
        paper = importlib.import_module(f"papers.{app.paper_name(grid.config.partition(':')[0])}.train")
        results += sweep.run_sweep(grid, paper.train_and_evaluate, os.path.join(root, grid.config.split(":")[1]))
    return {"seconds": time.perf_counter() - started, "results": results}


def on_ray(root: str) -> dict:
    """Every grid's trials on a local Ray with CONCURRENT slots, Ray's start included in the wall time."""
    import ray

    started = time.perf_counter()
    ray_runner.connect(None, num_cpus=CONCURRENT)
    ray_start = time.perf_counter() - started
    runs = [
        trial for grid in GRIDS for trial in trials.grid_trials(grid, os.path.join(root, grid.config.split(":")[1]))
    ]
    try:
        outcome = ray_runner.run_trials(runs, max_concurrent=CONCURRENT, retries=0, log=lambda _: None)
    finally:
        ray.shutdown()
    if outcome.failed:
        raise RuntimeError(f"benchmark trials failed: {outcome.failed}")
    trial_seconds = [trials.read_record(trial)["seconds"] for trial in runs]
    return {
        "seconds": time.perf_counter() - started,
        "ray_start": ray_start,
        "trial_seconds": statistics.median(trial_seconds),
        "workers": outcome.workers,
        "results": outcome.results,
    }


def render(seq: dict, ray: dict, load: tuple[float, float]) -> str:
    """The Markdown section from the two measurements and the 1-minute load average before and after."""
    count = len(seq["results"])
    same = all(
        ray_metrics == app.printed_metrics(seq_metrics)
        for (_, seq_metrics), (_, ray_metrics) in zip(seq["results"], ray["results"], strict=True)
    )
    overhead = (CONCURRENT * ray["seconds"] - seq["seconds"]) / count
    rows = [
        ["sequential, in-process (run_sweep)", f"{seq['seconds']:.0f}", f"{seq['seconds'] / count:.0f}", "", ""],
        [
            f"local Ray, {CONCURRENT} concurrent trials in reused workers",
            f"{ray['seconds']:.0f}",
            f"{ray['trial_seconds']:.0f} (median, in a worker)",
            f"{ray['ray_start']:.1f}",
            f"{overhead:+.0f}",
        ],  # fmt: skip
    ]
    table = report.markdown_table(
        ["runner", "wall (s)", "per trial (s)", "Ray start (s)", "overhead per trial (core-s)"], rows
    )
    return (
        f"{table}\n\n{count} trials (Swish and LRLC smoke configs, 2 seeds each), on Ray in {ray['workers']} worker "
        f"processes. Ray took "
        f"{ray['seconds'] / seq['seconds']:.2f}x the sequential wall time; the final metrics of every trial were "
        f"{'the same' if same else 'NOT the same'} both ways (to main.py's 6 decimals). Measured on "
        f"{report.machine_description()} (1-minute load average {load[0]:.1f} before, {load[1]:.1f} after) by "
        "`python -m benchmarks.run_all --only sweep`."
    )


def markdown() -> str:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as root:
        seq = sequential(os.path.join(root, "sequential"))
        ray = on_ray(os.path.join(root, "ray"))
    return render(seq, ray, (load_before, os.getloadavg()[0]))
