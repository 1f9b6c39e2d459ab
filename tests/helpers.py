"""Running a paper's scripts the way a user does, in a subprocess, for the end-to-end tests."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    env.update(extra)
    return env


def run_module(module: str, *flags: str, check: bool = True, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    """`python -m MODULE FLAGS...` from the repository root; returns the finished process with text stdout/stderr."""
    result = subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=REPO,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def run_main(paper: str, *flags: str, check: bool = True, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    """`python -m papers.<paper>.main FLAGS...`."""
    return run_module(f"papers.{paper}.main", *flags, check=check, timeout=timeout, **env)


def assert_smoke_run_learns(paper: str, workdir) -> dict:
    """Trains the paper's smoke config into `workdir` through its main.py; it must beat chance (0.1 on the 10
    digit classes) by far and write metrics.jsonl. Returns the final metrics."""
    result = run_main(paper, f"--config=papers/{paper}/config.py:smoke", f"--workdir={workdir}")
    final = final_metrics(result.stdout)
    assert final["eval/accuracy"] > 0.3, final
    assert os.path.exists(os.path.join(workdir, "metrics.jsonl"))
    return final


def start_main(paper: str, *flags: str, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"papers.{paper}.main", *flags],
        cwd=REPO,
        env=subprocess_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def final_metrics(stdout: str) -> dict:
    """The JSON object on the last line of a process's stdout (a main prints its final metrics there)."""
    return json.loads(stdout.strip().splitlines()[-1])


def saved_parts(workdir) -> tuple[int, dict[str, object]]:
    """The latest checkpointed step of a run and its saved parts (but the step itself) as {leaf path: raw array}."""
    import jax

    from common.train.checkpoint import Checkpointer

    checkpointer = Checkpointer(str(workdir))
    step = checkpointer.latest_step()
    parts = {name: checkpointer.load_raw(name, step) for name in checkpointer.part_names(step) if name != "step"}
    checkpointer.close()
    return step, {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(parts)[0]}


def workdir_lock_is_free(workdir) -> bool:
    """Whether another process could take the workdir's lock now (as a second main.py would)."""
    import fcntl

    with open(os.path.join(workdir, ".lock"), "a+") as lock:  # a second open file, as another process would have
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


def fabricate_reproduction(tmp_path, sweep_file: str, final_accuracy, still_rising: bool = False):
    """A common.sweep.Reproduction of `sweep_file`'s real points and base config whose runs did not train: each
    logged a test-accuracy curve (every eval_every steps) that levels off at `final_accuracy(point)`, or that is
    still rising at its end, under tmp_path/runs; the README and figures go to tmp_path. For a reproduce.py's
    render and claims."""
    import numpy as np

    from common import sweep

    definitions = sweep.load_sweeps(sweep_file)
    base = sweep.load_config(sweep.load_sweep(sweep_file).config)
    steps = np.arange(base.train.eval_every, base.train.num_steps + 1, base.train.eval_every)
    shape = steps / steps[-1] if still_rising else 1 - np.exp(-steps / 60)
    pairs = []
    for point in (point for definition in definitions for point in definition.points()):
        final = final_accuracy(point)
        workdir = tmp_path / "runs" / sweep.point_name(point)
        workdir.mkdir(parents=True)
        rows = [{"step": int(s), "eval/accuracy": float(final * v)} for s, v in zip(steps, shape, strict=True)]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        pairs.append((point, {"eval/accuracy": final}))
    module = sweep.load_sweep_module(sweep_file)
    finished = sweep.FinishedSweep(module.SWEEP, base, pairs, 1.0, module)
    return sweep.Reproduction(finished, sweep_file, str(tmp_path / "runs"), str(tmp_path / "README.md"), "`cmd`")
