"""A sweep's points as trials: each one a paper's main.py in its own process and workdir, with a record of how it
ended.

A trial runs `python -m papers.<paper>.main --config=<spec> --config.<key>=<value>... --workdir=<root>/<point>`
from the repository root, so a bad override fails that trial alone and a rerun resumes from its checkpoint. Its
output goes to `<workdir>/trial.log`; how it ended goes to `<workdir>/trial.json` (`status` "finished" with the
final metrics main.py printed, or "failed" with the last error), and a finished trial is skipped on the next run.
Nothing here needs Ray: `ray_runner` schedules these trials, and `run_trial` runs one anywhere.
"""

import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

from common import app
from common.sweep import Sweep, apply_overrides, load_config, load_sweeps, point_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORD = "trial.json"
LOG = "trial.log"
ERROR_LINES = 20  # how much of a failed trial's output its record keeps


@dataclasses.dataclass(frozen=True)
class Trial:
    """One point of a sweep grid and where it runs."""

    config: str  # papers/<paper>/config.py[:variant]
    point: dict  # dotted config key -> value
    workdir: str  # <root>/<point name>
    cpus: float = 1
    gpus: float = 0

    @property
    def name(self) -> str:
        return point_name(self.point)

    @property
    def paper(self) -> str:
        return app.paper_name(self.config.partition(":")[0])

    def command(self) -> list[str]:
        """The main.py command line of this trial (run from the repository root)."""
        overrides = [f"--config.{key}={value}" for key, value in self.point.items()]
        return [sys.executable, "-m", f"papers.{self.paper}.main", f"--config={self.config}", *overrides,
                f"--workdir={self.workdir}"]  # fmt: skip


def grid_trials(grid: Sweep, root: str) -> list[Trial]:
    """The points of one grid as trials under `root`."""
    return [
        Trial(grid.config, point, os.path.abspath(os.path.join(root, point_name(point))), grid.cpus, grid.gpus)
        for point in grid.points()
    ]


def sweep_trials(path: str, root: str) -> list[Trial]:
    """Every point of every grid of the sweep file at `path`, in the order they run, as trials under `root`."""
    return [trial for grid in load_sweeps(path) for trial in grid_trials(grid, root)]


def check_overrides(trial: Trial) -> str | None:
    """None if every override key of the trial exists in its config, else the error (no process is started for
    a key that cannot exist, and no retry would help it)."""
    try:
        apply_overrides(load_config(trial.config), trial.point)
    except (KeyError, FileNotFoundError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def read_record(trial: Trial) -> dict | None:
    """The trial's record (`status`, `metrics` or `error`, `attempts`, `seconds`), or None if it never ended."""
    path = os.path.join(trial.workdir, RECORD)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_record(trial: Trial, record: dict) -> None:
    os.makedirs(trial.workdir, exist_ok=True)
    path = os.path.join(trial.workdir, RECORD)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)  # a sweep killed mid-write leaves the old record or none, never half of one


def finished_metrics(trial: Trial) -> dict | None:
    record = read_record(trial)
    return record["metrics"] if record and record["status"] == "finished" else None


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (a killed sweep or Ray worker), so
    the trial saves a checkpoint and stops instead of training on unowned."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_trial(trial: Trial) -> dict:
    """Runs the trial's main.py to its end, its output appended to `<workdir>/trial.log`.

    Returns {"ok": True, "metrics": {...}, "seconds": s} from the JSON line main.py prints last, or
    {"ok": False, "error": "exit status N: <last lines of output>", "seconds": s}.
    """
    os.makedirs(trial.workdir, exist_ok=True)
    log_path = os.path.join(trial.workdir, LOG)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    started = time.time()
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(trial.command())}\n")  # on a line of its own after a progress bar
        log.flush()
        returncode = subprocess.call(
            trial.command(), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_terminate_with_parent
        )
    seconds = time.time() - started
    with open(log_path) as f:
        lines = f.read().splitlines()
    if returncode == 0:
        try:
            final = json.loads(lines[-1])
            return {"ok": True, "metrics": {k: v for k, v in final.items() if k != "workdir"}, "seconds": seconds}
        except (IndexError, json.JSONDecodeError):
            return {"ok": False, "error": f"no final metrics line in {log_path}", "seconds": seconds}
    tail = "\n".join(lines[-ERROR_LINES:])
    return {"ok": False, "error": f"exit status {returncode}:\n{tail}", "seconds": seconds}
