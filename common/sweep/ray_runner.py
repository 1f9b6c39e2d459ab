"""Runs a sweep's trials (common/sweep/trials.py) on a Ray cluster: local, or one started with `ray start`.

Each trial is a Ray task that reserves the sweep's `cpus`/`gpus` and trains the trial in its worker process
(`trials.run_trial_in_process`: what the paper's main.py does, in the trial's workdir). Ray keeps a worker process
for the next task, so a worker pays Python, TensorFlow and JAX start-up once and then runs trial after trial (each
record names the process, `pid`). A CPU worker first claims the trial's `cpus` cores for itself (`cores` in the
record), so side-by-side trials split the machine rather than each spreading thread pools over all of it. A GPU
trial gets a fresh worker instead: JAX binds to the GPUs it first sees and keeps their memory, and the next task
may be given other GPUs. The driver (this process) keeps at most `max_concurrent` in flight, reruns a failed trial
(an error, or a worker that died) up to `retries` times, reports it with its last error once it has used them
while the others go on, skips trials whose record says finished, and prints progress (done / running / failed /
pending, ETA) as trials end. Workdirs must be on a filesystem every node shares at the same path, as must the
repository (docs/sweeps.md).
"""

import dataclasses
import os
import time
from collections.abc import Callable

from common.sweep import FinishedSweep, load_config, load_sweep_module
from common.sweep import trials as trials_lib

PROGRESS_EVERY_S = 30  # a progress line at least this often while trials run


class SweepFailedError(RuntimeError):
    """Some trials failed after their retries; the others finished and kept their results."""


@dataclasses.dataclass
class Outcome:
    """What a Ray sweep did: the metrics of every finished trial, the errors of the failed ones."""

    results: list[tuple[dict, dict]]  # (point, final metrics) of the finished trials, in sweep order
    failed: list[tuple[trials_lib.Trial, str]]  # (trial, last error)
    skipped: int  # trials already finished before this run
    ran: int  # trial attempts started by this run (retries included)
    workers: int  # worker processes that ran them


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Joins the Ray cluster at `address` ('auto' or HOST:PORT), or starts a local one (all CPUs, or `num_cpus`);
    keeps an already-initialised Ray (a test's session)."""
    import ray

    if ray.is_initialized():
        return
    if address is None:
        # Ray starts workers at nice 15 by default; a trial is the work itself, so it runs at normal priority and
        # is not starved by whatever else loads the machine. (A cluster from `ray start` takes it from the same
        # variable: docs/sweeps.md.)
        os.environ.setdefault("RAY_worker_niceness", "0")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the workers' TensorFlow: errors only in trial.log
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")


def run_trial_on_cores(trial: trials_lib.Trial) -> dict:
    """A CPU trial in a Ray worker: the worker claims the trial's `cpus` cores for its life on its first trial
    (`trials.claim_cores`, before JAX starts its thread pool), then trains; the record names the cores ([] when
    none were free and the trial shared them all)."""
    cores = trials_lib.claim_cores(max(int(trial.cpus), 1))
    return {**trials_lib.run_trial_in_process(trial), "cores": cores}


def _remote_trial_runners() -> dict[bool, object]:
    """The Ray task that runs one trial, by whether the trial takes GPUs: CPU workers are pinned to their cores and
    reused for the next trial; a GPU one runs a single trial (max_calls=1), since its JAX would keep the first
    trial's GPUs and memory."""
    import ray

    return {
        False: ray.remote(max_retries=0)(run_trial_on_cores),
        True: ray.remote(max_retries=0, max_calls=1)(trials_lib.run_trial_in_process),
    }


def _eta(started: float, done_here: int, remaining: int) -> str:
    if not done_here or not remaining:
        return "?" if remaining else "0s"
    seconds = (time.time() - started) / done_here * remaining
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f}s"


def run_trials(
    trials: list[trials_lib.Trial],
    address: str | None = None,
    max_concurrent: int | None = None,
    retries: int = 2,
    log: Callable[[str], None] = print,
) -> Outcome:
    """Runs every unfinished trial on Ray (see the module docstring); returns the Outcome."""
    if retries < 0 or (max_concurrent is not None and max_concurrent < 1):
        raise ValueError(f"retries must be >= 0 and max_concurrent >= 1; got {retries} and {max_concurrent}")
    pending, failed, skipped = [], {}, 0
    for index, trial in enumerate(trials):
        if trials_lib.finished_metrics(trial) is not None:
            skipped += 1
        elif (error := trials_lib.check_overrides(trial)) is not None:
            failed[index] = error
            trials_lib.write_record(trial, {"status": "failed", "error": error, "attempts": 0})
        else:
            pending.append(index)
    log(f"sweep: {len(trials)} trials, {skipped} already finished, {len(failed)} with bad overrides, "
        f"{len(pending)} to run")  # fmt: skip
    attempts = dict.fromkeys(pending, 0)
    running: dict = {}  # object ref -> trial index
    started, done_here, ran, last_progress, pids = time.time(), 0, 0, 0.0, set()
    if pending:
        import ray

        connect(address, num_cpus=max_concurrent)
        runners = _remote_trial_runners()
        cluster = ray.cluster_resources()
        for index in list(pending):
            trial = trials[index]
            if trial.cpus > cluster.get("CPU", 0) or trial.gpus > cluster.get("GPU", 0):
                failed[index] = (f"a trial needs {trial.cpus} CPUs and {trial.gpus} GPUs; the cluster has "
                                 f"{cluster.get('CPU', 0)} and {cluster.get('GPU', 0)}")  # fmt: skip
                pending.remove(index)
                log(f"FAILED {trial.name}: {failed[index]}")
    while pending or running:
        while pending and (max_concurrent is None or len(running) < max_concurrent):
            index = pending.pop(0)
            trial = trials[index]
            attempts[index] += 1
            ran += 1
            ref = runners[trial.gpus > 0].options(num_cpus=trial.cpus, num_gpus=trial.gpus).remote(trial)
            running[ref] = index
        ready, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_EVERY_S)
        for ref in ready:
            index = running.pop(ref)
            trial = trials[index]
            try:
                result = ray.get(ref)
            except Exception as error:  # the worker or its node died: counts as a failed attempt
                result = {"ok": False, "error": f"{type(error).__name__}: {error}", "seconds": 0.0, "pid": None}
            pids.add(result["pid"])
            if result["ok"]:
                done_here += 1
                record = {"status": "finished", "metrics": result["metrics"], "attempts": attempts[index],
                          "seconds": round(result["seconds"], 1), "pid": result["pid"],
                          "cores": result.get("cores")}  # fmt: skip
                trials_lib.write_record(trial, record)
                log(f"finished {trial.name} ({trial.config}) in {result['seconds']:.0f}s: {result['metrics']}")
            elif attempts[index] <= retries:
                log(f"retrying {trial.name} (attempt {attempts[index]} of {retries + 1} failed): "
                    f"{result['error'].splitlines()[-1]}")  # fmt: skip
                pending.insert(0, index)
            else:
                done_here += 1
                failed[index] = result["error"]
                record = {"status": "failed", "error": result["error"], "attempts": attempts[index],
                          "pid": result["pid"], "cores": result.get("cores")}  # fmt: skip
                trials_lib.write_record(trial, record)
                log(f"FAILED {trial.name} ({trial.config}) after {attempts[index]} attempts: {result['error']}")
        if ready or time.time() - last_progress >= PROGRESS_EVERY_S:
            last_progress = time.time()
            finished = sum(trials_lib.finished_metrics(t) is not None for t in trials)
            log(f"progress: {finished}/{len(trials)} done, {len(running)} running, {len(failed)} failed, "
                f"{len(pending)} pending; ETA {_eta(started, done_here, len(running) + len(pending))}")  # fmt: skip
    results = [(t.point, m) for t in trials if (m := trials_lib.finished_metrics(t)) is not None]
    failures = [(trials[i], error) for i, error in sorted(failed.items())]
    return Outcome(results, failures, skipped, ran, len(pids - {None}))


def run_sweep_file_on_ray(
    path: str,
    root: str,
    address: str | None = None,
    max_concurrent: int | None = None,
    retries: int = 2,
    log: Callable[[str], None] = print,
) -> FinishedSweep:
    """`common.sweep.run_sweep_file` on Ray: the same FinishedSweep for the paper's report, every trial trained as
    its main.py would. Raises SweepFailedError naming the failed trials and their errors once every other trial has
    ended."""
    started = time.time()
    module = load_sweep_module(path)
    outcome = run_trials(trials_lib.sweep_trials(path, root), address, max_concurrent, retries, log)
    if outcome.failed:
        lines = [f"{trial.name} ({trial.config}): {error}" for trial, error in outcome.failed]
        raise SweepFailedError(f"{len(outcome.failed)} trial(s) of {path} failed:\n" + "\n".join(lines))
    minutes = (time.time() - started) / 60
    return FinishedSweep(module.SWEEP, load_config(module.SWEEP.config), outcome.results, minutes, module)
