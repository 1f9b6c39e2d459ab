"""Sweeps on a local Ray: trials as main.py processes, retries, skipping finished trials, resuming a killed sweep.

One Ray session for the module (2 CPUs, no dashboard), shut down at the end with no Ray process left behind.
"""

import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import pytest
from absl import flags
from ml_collections import config_flags

from common import sweep
from common.sweep import ray_runner, trials
from tests.helpers import REPO, run_module, subprocess_env

TWO_PAPERS = """
from common.sweep import Sweep

SWEEP = Sweep(config="papers/swish/config.py:smoke", axes={"model.activation": ["relu"], "seed": [0, 1]})
LRLC = Sweep(config="papers/low_rank_local/config.py:smoke", axes={("model.layer", "model.rank"): [("lrlc", 2)],
             "seed": [0, 1]})
BAD = Sweep(config="papers/swish/config.py:smoke", axes={"model.activation": ["nope"], "seed": [0]})
SWEEPS = [SWEEP, LRLC, BAD]
"""


def test_zipped_axes_vary_together_inside_the_product():
    grid = sweep.Sweep(
        config="unused", axes={("model.layer", "model.rank"): [("conv", 1), ("lrlc", 4)], "seed": [0, 1]}
    )
    assert grid.points() == [
        {"model.layer": "conv", "model.rank": 1, "seed": 0},
        {"model.layer": "conv", "model.rank": 1, "seed": 1},
        {"model.layer": "lrlc", "model.rank": 4, "seed": 0},
        {"model.layer": "lrlc", "model.rank": 4, "seed": 1},
    ]
    with pytest.raises(ValueError, match=r"zipped axis \('a', 'b'\): value \(1, 2, 3\) is not a tuple of 2 values"):
        sweep.Sweep(config="unused", axes={("a", "b"): [(1, 2, 3)]})


def test_every_sweep_file_expands_to_trials_whose_overrides_exist(tmp_path):
    for name in sorted(os.listdir(os.path.join(REPO, "configs", "sweeps"))):
        if name.endswith(".py") and name != "__init__.py":
            runs = trials.sweep_trials(os.path.join("configs", "sweeps", name), str(tmp_path))
            assert runs and len({trial.workdir for trial in runs}) == len(runs), name
            assert trials.check_overrides(runs[0]) is None, name
    assert len(trials.sweep_trials("configs/sweeps/lrlc_rank.py", str(tmp_path))) == 24  # baselines, then ranks


def test_a_trials_command_line_gives_main_the_config_the_in_process_path_trains():
    """main.py parses the trial's --config flags into the same config run_sweep builds with apply_overrides: the
    same seeds and settings, so both paths train the same run."""
    grid = sweep.Sweep(
        "papers/low_rank_local/config.py:smoke", {("model.layer", "model.rank"): [("lc", 4)], "seed": [3]}
    )
    (trial,) = trials.grid_trials(grid, "/w")
    command = trial.command()
    assert command[1:4] == ["-m", "papers.low_rank_local.main", "--config=papers/low_rank_local/config.py:smoke"]
    assert command[-1] == "--workdir=/w/model.layer=lc,model.rank=4,seed=3"
    argv, parser = ["main.py", *command[3:-1]], flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", parser, lock_config=True, sys_argv=argv)
    parser(argv)
    expected = sweep.apply_overrides(sweep.load_config(trial.config), trial.point)
    assert parser.config.to_dict() == expected.to_dict()
    assert (parser.config.model.layer, parser.config.model.rank, parser.config.seed) == ("lc", 4, 3)


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for this module: 2 CPUs, no dashboard; afterwards no Ray process of it is left running."""
    import ray

    ray_runner.connect(None, num_cpus=2)  # include_dashboard=False, workers at normal priority
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    time.sleep(1)
    left = [p.name() for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not [name for name in left if "ray" in name or "gcs" in name], left


def _trial_processes(root) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(root) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.fixture
def own_tmp():
    """A temporary directory outside pytest's rotating basetemp, which concurrent pytest runs may prune while this
    module's minutes-long sweep still writes there."""
    with tempfile.TemporaryDirectory(prefix="sweep-ray-test-") as path:
        yield pathlib.Path(path)


@pytest.mark.long
def test_killed_sweep_resumes_reports_the_failed_trial_and_reruns_skip_finished(ray_address, own_tmp):
    tmp_path = own_tmp
    sweep_file, root = tmp_path / "two_papers.py", tmp_path / "runs"
    sweep_file.write_text(TWO_PAPERS)
    runs = trials.sweep_trials(str(sweep_file), str(root))
    first = runs[0]
    # The sweep driver in its own process on the module's Ray, killed once a trial has saved a checkpoint.
    driver = subprocess.Popen(
        [sys.executable, "-m", "common.sweep", "run", str(sweep_file), f"--workdir={root}", f"--address={ray_address}",
         "--max-concurrent=2", "--retries=1"],  # fmt: skip
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.time() + 240
    while not any(os.path.isdir(os.path.join(t.workdir, "checkpoints", "10")) for t in runs[:2]):
        assert driver.poll() is None and time.time() < deadline, driver.communicate()[0]
        time.sleep(0.5)
    checkpointed = [t for t in runs[:2] if os.path.isdir(os.path.join(t.workdir, "checkpoints", "10"))]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 60  # its trials get SIGTERM when their Ray worker goes, save and exit
    while _trial_processes(root):
        assert time.time() < deadline, [p.info["cmdline"] for p in _trial_processes(root)]
        time.sleep(0.5)
    assert trials.read_record(first) is None  # the kill came before any trial ended

    lines = []
    outcome = ray_runner.run_trials(runs, max_concurrent=2, retries=1, log=lines.append)
    assert [point for point, _ in outcome.results] == [t.point for t in runs[:4]]  # the four good ones, in order
    assert all(0.2 < metrics["eval/accuracy"] <= 1 for _, metrics in outcome.results)
    (bad, error), = outcome.failed  # fmt: skip
    assert bad.point == {"model.activation": "nope", "seed": 0}
    assert "unknown activation 'nope'; valid choices:" in error
    assert trials.read_record(bad)["attempts"] == 2  # the try and its one retry
    for trial in checkpointed:  # started again after the kill, from its checkpoint at step 10
        log = open(os.path.join(trial.workdir, trials.LOG)).read()
        assert log.count("\n$ ") == 2 and "at step 10" in log.split("\n$ ")[2], log[-2000:]
    assert any(line.startswith("progress: 4/5 done, 0 running, 1 failed, 0 pending") for line in lines), lines

    # A rerun starts no finished trial again; the failed one is tried afresh.
    before = {t.name: os.path.getmtime(os.path.join(t.workdir, trials.RECORD)) for t in runs[:4]}
    again = ray_runner.run_trials(runs[:4], max_concurrent=2)
    assert (again.skipped, again.ran, again.results) == (4, 0, outcome.results)
    assert before == {t.name: os.path.getmtime(os.path.join(t.workdir, trials.RECORD)) for t in runs[:4]}

    # The in-process sequential path trains the same point to the same metrics (main.py prints 6 decimals).
    from papers.low_rank_local import train

    lrlc = sweep.Sweep(
        "papers/low_rank_local/config.py:smoke", {"model.layer": ["lrlc"], "model.rank": [2], "seed": [1]}
    )
    ((point, in_process),) = sweep.run_sweep(lrlc, train.train_and_evaluate, str(tmp_path / "in_process"))
    assert outcome.results[3] == (point, {name: round(value, 6) for name, value in in_process.items()})

    # The paper's reproduce.py on Ray gathers the finished trials into its README table without running them again.
    swish_only = tmp_path / "swish_only.py"
    swish_only.write_text(TWO_PAPERS.replace("SWEEPS = [SWEEP, LRLC, BAD]", ""))
    readme = tmp_path / "README.md"
    readme.write_text("# Swish\n")
    flags_ = [f"--sweep={swish_only}", f"--workdir={root}", f"--readme={readme}", "--max-concurrent=2"]
    result = run_module("papers.swish.reproduce", *flags_)
    assert "sweep: 2 trials, 2 already finished, 0 with bad overrides, 0 to run" in result.stdout
    median = 100 * statistics.median(metrics["eval/accuracy"] for _, metrics in outcome.results[:2])
    assert f"| relu | {median:.2f} |" in readme.read_text()
