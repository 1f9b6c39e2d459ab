"""Sweeps: a config spec plus axes of overrides, expanded to a grid and run one after another.

A sweep definition is a module in configs/sweeps/ with a `SWEEP = Sweep(...)`. Each point trains in its own
workdir (`<root>/<key=value,...>`), so an interrupted sweep resumes where it stopped: finished points only re-read
their final metrics and an interrupted point resumes from its last checkpoint.
"""

import dataclasses
import importlib.util
import itertools
import os
import statistics
from collections.abc import Callable, Mapping, Sequence

from ml_collections import ConfigDict

from common import report
from common.train.metrics import read_metrics


@dataclasses.dataclass(frozen=True)
class Sweep:
    config: str  # "papers/<paper>/config.py[:variant]"
    axes: Mapping[str, Sequence]  # dotted config key -> values; the grid is their Cartesian product

    def points(self) -> list[dict]:
        keys = list(self.axes)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.axes.values())]


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


def load_sweep(path: str) -> Sweep:
    module_spec = importlib.util.spec_from_file_location("_sweep", path)
    if module_spec is None:
        raise FileNotFoundError(f"sweep file {path!r} not found")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SWEEP


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


def median_steps_per_second(root: str, results: Sequence[tuple[dict, dict]]) -> float:
    """Median over a sweep's runs of the steps/s they logged (nan if none logged); compilation sits in each
    run's first window, so short runs read a little low."""
    rates = []
    for point, _ in results:
        rows = read_metrics(os.path.join(root, point_name(point)))
        rates += [row["train/steps_per_second"] for row in rows if "train/steps_per_second" in row]
    return statistics.median(rates) if rates else float("nan")


def provenance(
    command: str, sweep_file: str, root: str, results: Sequence[tuple[dict, dict]], setting: str, minutes: float
) -> str:
    """The closing line of a sweep's README block: the command, the machine, the runs and how long they took."""
    speed = median_steps_per_second(root, results)
    return (
        f"Measured by {command}, sweep `{sweep_file}`, on {report.machine_description()}; {len(results)} runs of "
        f"{setting} at a median {speed:.1f} steps/s; this invocation took {minutes:.0f} min (runs already finished "
        "in the workdir are only re-evaluated)."
    )
