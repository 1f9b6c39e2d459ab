"""A sweep's points as trials: each one trained the way the paper's main.py trains it, in its own workdir, with a
record of how it ended.

`run_trial_in_process` does in the calling process what `python -m papers.<paper>.main --config=<spec>
--config.<key>=<value>... --workdir=<root>/<point>` does from the repository root: the same config and checks, the
same workdir lock and config.json, the same final metrics. So a process can run one trial after another (a Ray
worker pays Python, TensorFlow and JAX start-up once for all of them), a bad override or a failing run fails that
trial alone, and a rerun resumes from its checkpoint. A trial's output goes to `<workdir>/trial.log`; how it ended
goes to `<workdir>/trial.json` (`status` "finished" with the final metrics, or "failed" with the last error), and a
finished trial is skipped on the next run. Nothing here needs Ray: `ray_runner` schedules these trials.
"""

import contextlib
import dataclasses
import fcntl
import importlib
import json
import os
import shlex
import sys
import tempfile
import time
import traceback

from common import app
from common.sweep import Sweep, apply_overrides, load_config, load_sweeps, point_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# One lock file per CPU core of this machine, shared by every sweep on it; $REPRISE_CORE_LOCKS gives a Ray cluster
# (its workers inherit the driver's environment) a pool of its own.
CORE_LOCKS = os.path.join(tempfile.gettempdir(), "reprise-cores")
RECORD = "trial.json"
LOG = "trial.log"
ERROR_LINES = 20  # how much of a failed trial's traceback its record keeps


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
        """The main.py command line that runs this trial alone (from the repository root); trial.log starts each
        attempt with it."""
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
    """None if every override key of the trial exists in its config, else the error (the driver checks this before
    it schedules anything: no retry would help a key that cannot exist)."""
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


def run_trial_in_process(trial: Trial) -> dict:
    """Trains the trial in this process as its main.py would, its output appended to `<workdir>/trial.log`.

    Returns {"ok": True, "metrics": {...}, ...} with the final metrics rounded as main.py prints them, or
    {"ok": False, "error": "<type>: <message>\n<last traceback lines>", ...}, both with "seconds" and "pid" (the
    process that ran it). Any exception becomes such an error, so the process lives on to run the next trial; the
    workdir's lock is let go of either way.
    """
    started = time.time()
    try:
        os.makedirs(trial.workdir, exist_ok=True)
        # From the repository root, as main.py runs: config specs and data paths are relative to it.
        with _output_appended_to(os.path.join(trial.workdir, LOG)), contextlib.chdir(REPO):
            print(f"\n$ {shlex.join(trial.command())}", flush=True)  # on a line of its own after a progress bar
            try:
                result = {"ok": True, "metrics": _train(trial)}
            except Exception as error:
                traceback.print_exc()  # into trial.log, whole
                result = {"ok": False, "error": _describe(error)}
    except OSError as error:  # the workdir or its log cannot be written
        result = {"ok": False, "error": _describe(error)}
    return {**result, "seconds": time.time() - started, "pid": os.getpid()}


_claimed_cores: list = []  # this process's open, locked core files: held until it exits


def claim_cores(count: int) -> list[int]:
    """Pins this process to `count` CPU cores no other claiming process on the machine holds, so trials running
    side by side split the cores instead of each running XLA's and TensorFlow's thread pools over all of them
    (on 2 cores, two 1-core trials do 1.5x the LSTM steps of one 2-core trial: docs/sweeps.md).

    Must run before JAX or TensorFlow start their thread pools: those size themselves to the process's cores once.
    A process claims once; later calls return the same cores. The claim is an flock on a file per core under
    CORE_LOCKS, so it ends when the process does. Returns [] (and pins nothing) if fewer than `count` cores are
    free; the trial then shares all of them.
    """
    if _claimed_cores:
        return sorted(core for core, _ in _claimed_cores)
    locks = os.environ.get("REPRISE_CORE_LOCKS", CORE_LOCKS)
    os.makedirs(locks, exist_ok=True)
    held = []
    for core in sorted(os.sched_getaffinity(0)):
        if len(held) == count:
            break
        handle = open(os.path.join(locks, f"{core}.lock"), "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        held.append((core, handle))
    if len(held) < count:
        for _, handle in held:
            handle.close()  # closing drops the lock
        return []
    _claimed_cores.extend(held)
    os.sched_setaffinity(0, [core for core, _ in held])
    return [core for core, _ in held]


def _train(trial: Trial) -> dict:
    """What `app.main_for(papers.<paper>.train)` does with the trial's flags: config, checks, environment, workdir,
    training; the final metrics rounded to main.py's 6 decimals."""
    config = apply_overrides(load_config(trial.config), trial.point)
    paper = importlib.import_module(f"papers.{trial.paper}.train")
    app.check_config(config)
    if hasattr(paper, "check_config"):
        paper.check_config(config)
    app.prepare([sys.argv[0]])
    app.take_workdir(trial.workdir, config)
    try:
        print(f"workdir: {trial.workdir}", flush=True)
        final = paper.train_and_evaluate(config, trial.workdir)
    finally:
        app.unlock_workdir(trial.workdir)
    return json.loads(json.dumps(app.printed_metrics(final)))  # as main.py prints them


def _describe(error: BaseException) -> str:
    lines = "".join(traceback.format_exception(error)).rstrip().splitlines()
    return f"{type(error).__name__}: {error}\n" + "\n".join(lines[-ERROR_LINES:])


@contextlib.contextmanager
def _output_appended_to(path: str):
    """Sends this process's output to the end of `path` while the block runs: Python's sys.stdout and sys.stderr
    (prints, the progress bar) and file descriptors 1 and 2 (what TensorFlow's and XLA's C++ code writes)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            for stream in (sys.__stdout__, sys.__stderr__):  # what went through the original objects
                if stream is not None:
                    stream.flush()
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
