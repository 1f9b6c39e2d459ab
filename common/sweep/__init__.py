"""Sweeps: a config spec plus axes of overrides, expanded to a grid and run one after another or on Ray.

A sweep definition is a module in configs/sweeps/ with a `SWEEP = Sweep(...)` (and, where one grid is not enough,
`SWEEPS = [...]`: the grids run in that order, SWEEP the one a report describes). The grid is the Cartesian
product of the axes; an axis whose key is a tuple of dotted keys takes tuples of values that vary together (a zip):
`{("model.layer", "model.rank"): [("conv", 1), ("lrlc", 4)], "seed": [0, 1]}` is 4 points. Each point trains in
its own workdir (`<root>/<key=value,...>`), so an interrupted sweep resumes where it stopped: finished points only
re-read their final metrics and an interrupted point resumes from its last checkpoint.

Two ways to run one: `run_sweep` trains the points one after another in this process (the default of every
reproduce.py); `common.sweep.ray_runner` trains each point as the paper's main.py would, in Ray worker processes
that run trial after trial, on a cluster local or remote (`python -m common.sweep run SWEEP`, or a reproduce.py
with --address/--max-concurrent; docs/sweeps.md). Both write the same workdirs, so either resumes what the other
started.

Every paper's table comes from its `papers/<paper>/reproduce.py`, an absl main of one shape:
`define_reproduce_flags(__file__, SWEEP_FILE)` (--sweep, --workdir, --readme) and
`absl.app.run(reproduce_main(__file__, BLOCK, train.train_and_evaluate, render))`: it runs the sweep and writes the
Markdown that `render(Reproduction)` returns into the README's block, plots beside the README.
"""

import dataclasses
import importlib.util
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

from absl import flags
from ml_collections import ConfigDict

from common import app, report, results
from common.train.metrics import read_metrics

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Sweep:
    config: str  # "papers/<paper>/config.py[:variant]"
    # dotted config key -> values, or a tuple of keys -> tuples of values that vary together; the grid is the
    # Cartesian product of the axes
    axes: Mapping[str | tuple[str, ...], Sequence]
    where: Callable[[dict], bool] | None = None  # the points to keep (say, cells above a replay ratio); None: all
    cpus: float = 1  # what one trial reserves on a Ray cluster
    gpus: float = 0

    def __post_init__(self):
        for key, values in self.axes.items():
            if isinstance(key, tuple):
                for value in values:
                    if not isinstance(value, tuple) or len(value) != len(key):
                        raise ValueError(f"zipped axis {key}: value {value!r} is not a tuple of {len(key)} values")

    def points(self) -> list[dict]:
        points = []
        for values in itertools.product(*self.axes.values()):
            point = {}
            for key, value in zip(self.axes, values, strict=True):
                point.update(zip(key, value, strict=True) if isinstance(key, tuple) else [(key, value)])
            points.append(point)
        return [point for point in points if self.where is None or self.where(point)]


def load_config(spec: str) -> ConfigDict:
    """`path/to/config.py[:variant]` -> the ConfigDict its get_config(variant) returns, locked."""
    path, _, variant = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_sweep_config", path)
    if module_spec is None:
        raise FileNotFoundError(f"config file {path!r} not found")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(variant) if variant else module.get_config()
    config.lock()
    return config


def apply_overrides(config: ConfigDict, overrides: Mapping) -> ConfigDict:
    """A copy of `config` with dotted-key overrides; an unknown key raises naming it and the valid keys."""
    config = ConfigDict(config.to_dict())
    config.lock()
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = _child(node, part, dotted)
        _child(node, leaf, dotted)
        setattr(node, leaf, value)
    return config


def _child(node: ConfigDict, key: str, dotted: str):
    if key not in node:
        raise KeyError(f"unknown config key {dotted!r}: {key!r} is not one of {sorted(node.keys())}")
    return node[key]


def point_name(point: Mapping) -> str:
    return ",".join(f"{key}={value}" for key, value in point.items())


def load_sweep_module(path: str) -> ModuleType:
    """The sweep definition module at `path` (a configs/sweeps file)."""
    module_spec = importlib.util.spec_from_file_location("_sweep", path)
    if module_spec is None:
        raise FileNotFoundError(f"sweep file {path!r} not found")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_sweep(path: str) -> Sweep:
    return load_sweep_module(path).SWEEP


def load_sweeps(path: str) -> list[Sweep]:
    """Every grid of the sweep file, in the order they run: its SWEEPS, or [SWEEP]."""
    module = load_sweep_module(path)
    return list(module.SWEEPS if hasattr(module, "SWEEPS") else [module.SWEEP])


def run_sweep(
    sweep: Sweep,
    train_and_evaluate: Callable[[ConfigDict, str], dict],
    root: str,
) -> list[tuple[dict, dict]]:
    """Trains every point of the grid (skipping finished ones); returns (point, final metrics) pairs."""
    base = load_config(sweep.config)
    results = []
    points = sweep.points()
    for index, point in enumerate(points, 1):
        name = point_name(point)
        print(f"[{index}/{len(points)}] {name}", flush=True)
        workdir = os.path.join(root, name)
        results.append((point, train_and_evaluate(apply_overrides(base, point), workdir)))
    return results


@dataclasses.dataclass(frozen=True)
class FinishedSweep:
    """What a sweep's report needs: its definition, base config, (point, final metrics) pairs and wall time."""

    definition: Sweep  # the file's SWEEP
    base: ConfigDict
    results: list[tuple[dict, dict]]  # of every grid of the file, in the order they ran
    minutes: float
    module: ModuleType  # the sweep file, for what else it defines (a baseline cell, ...)


def run_sweep_file(path: str, train_and_evaluate: Callable[[ConfigDict, str], dict], root: str) -> FinishedSweep:
    """Loads the sweep module at `path` and runs its grids under `root`, timing the whole invocation."""
    started = time.time()
    module = load_sweep_module(path)
    results = [pair for definition in load_sweeps(path) for pair in run_sweep(definition, train_and_evaluate, root)]
    minutes = (time.time() - started) / 60
    return FinishedSweep(module.SWEEP, load_config(module.SWEEP.config), results, minutes, module)


def define_ray_flags() -> None:
    """--address, --max-concurrent and --retries: where and how a sweep runs on Ray (common.sweep.ray_runner)."""
    flags.DEFINE_string(
        "address",
        None,
        "A Ray cluster to run the trials on: 'auto' (the one `ray start` began on "
        "this machine) or HOST:PORT; with neither this nor --max-concurrent, trials run in-process.",
    )
    flags.DEFINE_integer(
        "max-concurrent",
        None,
        "At most this many trials at once on Ray (default: as many as the "
        "cluster's CPUs and GPUs fit); starts a local Ray when --address is not given.",
    )
    flags.DEFINE_integer("retries", 2, "On Ray, how many times a failed trial is rerun before it is reported.")


def define_reproduce_flags(paper: str, sweep_file: str) -> None:
    """The flags of every `papers/<paper>/reproduce.py` (`paper`: its `__file__` or the paper's name): --sweep
    (default `sweep_file`), --workdir (default workdirs/<paper>/<sweep file's stem>), --readme (default the
    paper's README.md; plots are written beside it) and the Ray flags (define_ray_flags)."""
    name = app.paper_name(paper)
    flags.DEFINE_string("sweep", sweep_file, "The sweep definition: a configs/sweeps/*.py file.")
    flags.DEFINE_string("workdir", None, f"Where the runs go; default workdirs/{name}/<sweep file's stem>.")
    flags.DEFINE_string("readme", os.path.join("papers", name, "README.md"), "The README whose block to write.")
    define_ray_flags()


def on_ray() -> bool:
    """Whether the Ray flags ask for Ray rather than the in-process sequential path."""
    return FLAGS.address is not None or FLAGS["max-concurrent"].value is not None


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A finished reproduce.py sweep and where it ran, for the paper's `render`."""

    finished: FinishedSweep
    sweep_file: str
    workdir: str
    readme: str
    command: str  # the command line that reproduces the block, in backticks

    @property
    def stem(self) -> str:
        """The sweep file's name without folder and .py: what `{sweep}` in block and plot names stands for."""
        return os.path.splitext(os.path.basename(self.sweep_file))[0]

    def plot_path(self, name: str) -> str:
        """Where a plot the block links to as `name` is written: beside the README."""
        return os.path.join(os.path.dirname(os.path.abspath(self.readme)), name)

    def provenance(self, setting: str) -> str:
        return provenance(
            self.command, self.sweep_file, self.workdir, self.finished.results, setting, self.finished.minutes
        )


def reproduce_main(
    paper: str,
    block: str,
    train_and_evaluate: Callable[[ConfigDict, str], dict],
    render: Callable[[Reproduction], str],
    claims: Callable[[Reproduction], list] | None = None,
):
    """The absl main of `papers/<paper>/reproduce.py`: runs --sweep under --workdir (finished runs are only
    re-evaluated), in this process or, with --address/--max-concurrent, as trials on Ray; writes `render`'s
    Markdown into --readme's `block` (which may name `{sweep}`, the sweep file's stem) and prints it. With `claims`
    (Reproduction -> list of common.results.Claim), also writes them, from the same finished runs, to
    `results/<sweep stem>.json` beside the README, for `python -m common.results`."""
    name = app.paper_name(paper)

    def main(argv):
        app.prepare(argv)
        stem = os.path.splitext(os.path.basename(FLAGS.sweep))[0]
        workdir = FLAGS.workdir or os.path.join("workdirs", name, stem)
        if on_ray():
            from common.sweep import ray_runner

            finished = ray_runner.run_sweep_file_on_ray(
                FLAGS.sweep, workdir, FLAGS.address, FLAGS["max-concurrent"].value, FLAGS.retries
            )
        else:
            finished = run_sweep_file(FLAGS.sweep, train_and_evaluate, workdir)
        command = f"python -m papers.{name}.reproduce --workdir {workdir} --readme {FLAGS.readme}"
        if FLAGS.sweep != FLAGS["sweep"].default:
            command += f" --sweep {FLAGS.sweep}"
        for flag in ("address", "max-concurrent"):
            if FLAGS[flag].value is not None:
                command += f" --{flag} {FLAGS[flag].value}"
        reproduction = Reproduction(finished, FLAGS.sweep, workdir, FLAGS.readme, f"`{command}`")
        text = render(reproduction)
        report.replace_block(FLAGS.readme, block.format(sweep=stem), text)
        print(text, flush=True)
        if claims is not None:
            path = os.path.join(os.path.dirname(os.path.abspath(FLAGS.readme)), "results", f"{stem}.json")
            run_minutes = trial_minutes(reproduction.workdir, finished.results)
            record = results.record(claims(reproduction), FLAGS.sweep, f"`{command}`", finished.minutes, run_minutes)
            results.write_record(path, record)
            print(f"wrote {path}", flush=True)

    return main


def median_steps_per_second(root: str, results: Sequence[tuple[dict, dict]]) -> float:
    """Median over a sweep's runs of the steps/s they logged (nan if none logged); compilation sits in each
    run's first window, so short runs read a little low."""
    rates = []
    for point, _ in results:
        rows = read_metrics(os.path.join(root, point_name(point)))
        rates += [row["train/steps_per_second"] for row in rows if "train/steps_per_second" in row]
    return statistics.median(rates) if rates else float("nan")


def trial_minutes(root: str, results: Sequence[tuple[dict, dict]]) -> float | None:
    """The runs' wall time summed, from the records the Ray runner leaves in each run's workdir (trial.json);
    None where a run has none (trained in-process)."""
    from common.sweep import trials

    total = 0.0
    for point, _ in results:
        path = os.path.join(root, point_name(point), trials.RECORD)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            total += float(json.load(f).get("seconds", 0.0))
    return total / 60


def provenance(
    command: str, sweep_file: str, root: str, results: Sequence[tuple[dict, dict]], setting: str, minutes: float
) -> str:
    """The closing line of a sweep's README block: the command, the machine, the runs and how long they took."""
    speed = median_steps_per_second(root, results)
    summed = trial_minutes(root, results)
    training = f"; the runs took {summed:.0f} min summed over runs" if summed else ""
    return (
        f"Measured by {command}, sweep `{sweep_file}`, on {report.machine_description()}; {len(results)} runs of "
        f"{setting} at a median {speed:.1f} steps/s{training}; this invocation took {minutes:.0f} min (runs already "
        "finished in the workdir are only re-evaluated)."
    )


# Reporting a sweep: accuracy per value of one factor (pooled over the others and the seeds), per grid cell, and a
# dot plot of the factors. `labels` maps a config key to the name a reader sees ("model.kernel_size" -> "k").


def factor_values(results: Sequence[tuple[dict, dict]], key: str, metric: str = "eval/accuracy") -> dict:
    """value of `key` -> `metric` of every run with that value (in sweep order)."""
    values: dict = {}
    for point, metrics in results:
        values.setdefault(point[key], []).append(metrics[metric])
    return values


def mean_and_spread_percent(values: Sequence[float]) -> str:
    """'mean ± sd' of fractions, in percent with two decimals (no spread for a single run)."""
    mean = 100 * statistics.mean(values)
    spread = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{mean:.2f}{spread}"


def render_factor_table(
    results: Sequence[tuple[dict, dict]], key: str, labels: Mapping[str, str] | None = None, **columns: Mapping
) -> str:
    """One row per value of `key`: mean test accuracy ± sd, range and run count over every run with that value.

    columns: extra column name -> {value: cell} (e.g. parameter counts), placed after the value.
    """
    header = [(labels or {}).get(key, key), *columns, "mean test acc. (%) ± sd", "min - max (%)", "runs"]
    rows = [
        [
            value,
            *(cells.get(value, "") for cells in columns.values()),
            mean_and_spread_percent(values),
            f"{100 * min(values):.2f} - {100 * max(values):.2f}",
            len(values),
        ]
        for value, values in factor_values(results, key).items()
    ]
    return report.markdown_table(header, rows)


def render_grid_table(results: Sequence[tuple[dict, dict]], labels: Mapping[str, str] | None = None) -> str:
    """One row per grid cell (every key but the seed), its accuracy over the seeds."""
    cells: dict[tuple, list[float]] = {}
    keys = [key for key in results[0][0] if key != "seed"] if results else []
    for point, metrics in results:
        cells.setdefault(tuple(point[key] for key in keys), []).append(metrics["eval/accuracy"])
    rows = [[*cell, mean_and_spread_percent(values), len(values)] for cell, values in cells.items()]
    names = [(labels or {}).get(key, key) for key in keys]
    return report.markdown_table(names + ["mean test acc. (%)", "seeds"], rows)


def render_factor_plot(
    results: Sequence[tuple[dict, dict]], labels: Mapping[str, str], path: str, title: str, ylabel: str
) -> None:
    """One panel per factor in `labels` present in the sweep: each run a dot, the mean a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key in labels if results and key in results[0][0]]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.4), dpi=120, sharey=True)
    axes = [axes] if len(keys) <= 1 else list(axes)
    for ax, key in zip(axes, keys, strict=False):
        values_by_factor = factor_values(results, key)
        for i, values in enumerate(values_by_factor.values()):
            percent = [100 * v for v in values]
            ax.scatter([i] * len(percent), percent, color="tab:blue", alpha=0.6, s=14)
            ax.hlines(statistics.mean(percent), i - 0.3, i + 0.3, color="black", linewidth=2)
        ax.set_xticks(range(len(values_by_factor)), [str(value) for value in values_by_factor])
        ax.set_xlabel(labels[key])
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
