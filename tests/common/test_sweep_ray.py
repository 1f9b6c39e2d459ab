"""Sweep trials trained in-process as main.py would, and on a local Ray: reused workers, retries, skipping finished
trials, resuming a killed sweep.

One Ray session for the module (2 CPUs, no dashboard), shut down at the end with no Ray process left behind.
"""

import os
import pathlib
import re
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
from tests.helpers import REPO, run_module, subprocess_env, workdir_lock_is_free

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


def test_a_trials_command_line_gives_main_the_config_the_trial_trains():
    """main.py parses the command line a trial's log starts with into the config the trial trains (apply_overrides):
    the same seeds and settings, so the logged command reruns the same trial alone."""
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


CLAIM = """
import os, sys
from common.sweep import trials
print(trials.claim_cores(int(sys.argv[1])), sorted(os.sched_getaffinity(0)), trials.claim_cores(1), flush=True)
sys.stdin.read()  # holds its cores until the test closes its stdin (or kills it), however slow the machine
"""


def test_claimed_cores_pin_the_process_and_are_not_given_to_another_until_it_exits(tmp_path):
    locks, cores = str(tmp_path / "cores"), sorted(os.sched_getaffinity(0))

    def claim(count: int, hold: bool):
        return subprocess.Popen([sys.executable, "-c", CLAIM, str(count)], cwd=REPO,
                                env={**subprocess_env(), "REPRISE_CORE_LOCKS": locks}, stdout=subprocess.PIPE,
                                stdin=subprocess.PIPE if hold else subprocess.DEVNULL, text=True)  # fmt: skip

    holder = claim(1, hold=True)
    assert holder.stdout.readline() == f"[{cores[0]}] [{cores[0]}] [{cores[0]}]\n"  # pinned; a second claim: same
    # Every core asked for while one is held: none given, the process keeps all of its cores.
    everything = claim(len(cores), hold=False).communicate()[0]
    assert everything == f"[] {cores} {[cores[1]] if len(cores) > 1 else []}\n"
    holder.kill()
    holder.wait()
    assert claim(len(cores), hold=False).communicate()[0] == f"{cores} {cores} {cores}\n"


def test_failing_trials_are_reported_and_leave_the_process_and_workdir_free(tmp_path):
    """A bad override, a config the paper's check rejects and a run that fails in training each come back as an
    error naming the bad value, in this process (which lives on to run the next trial), with the workdir unlocked."""
    unknown_key = trials.Trial("papers/swish/config.py:smoke", {"model.activaton": "relu"}, str(tmp_path / "key"))
    rejected = trials.Trial("papers/fast_wavenet/config.py:smoke", {"generate.impl": "nope"}, str(tmp_path / "check"))
    in_training = trials.Trial("papers/swish/config.py:smoke", {"model.activation": "nope"}, str(tmp_path / "train"))
    cwd, stdout, stderr = os.getcwd(), sys.stdout, sys.stderr
    results = [trials.run_trial_in_process(trial) for trial in (unknown_key, rejected, in_training)]
    assert (os.getcwd(), sys.stdout, sys.stderr) == (cwd, stdout, stderr)  # the caller's directory and streams
    assert [result["ok"] for result in results] == [False, False, False]
    assert {result["pid"] for result in results} == {os.getpid()}
    assert results[0]["error"].startswith("KeyError: \"unknown config key 'model.activaton': 'activaton' is not one")
    assert results[1]["error"].startswith(
        "UnknownNameError: unknown generate.impl 'nope'; valid choices: auto, pallas, xla\nTraceback"
    )
    first, *middle, last = results[2]["error"].splitlines()
    assert first.startswith("UnknownNameError: unknown activation 'nope'; valid choices:")
    assert "in lookup" in "\n".join(middle) and last.endswith(first)  # the traceback's tail
    # Checks run before the workdir is taken, as in main.py; a run that got as far as training wrote its config.json.
    assert not os.path.exists(os.path.join(rejected.workdir, "config.json"))
    assert os.path.exists(os.path.join(in_training.workdir, "config.json")) and workdir_lock_is_free(
        in_training.workdir
    )
    log = open(os.path.join(in_training.workdir, trials.LOG)).read()
    assert log.startswith(f"\n$ {sys.executable} -m papers.swish.main --config=papers/swish/config.py:smoke ")
    assert f"workdir: {in_training.workdir}\n" in log and "Traceback" in log


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for this module: 2 CPUs, no dashboard; afterwards no Ray process of it is left running."""
    import ray

    with tempfile.TemporaryDirectory(prefix="sweep-ray-cores-") as cores:
        # The workers' core claims in a pool of their own: another sweep on the machine may hold the shared one.
        os.environ["REPRISE_CORE_LOCKS"] = cores
        ray_runner.connect(None, num_cpus=2)  # include_dashboard=False, workers at normal priority
        yield ray.get_runtime_context().gcs_address
        ray.shutdown()
        del os.environ["REPRISE_CORE_LOCKS"]
    time.sleep(1)
    left = [p.name() for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not [name for name in left if "ray" in name or "gcs" in name], left


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
    deadline = time.time() + 60  # Ray ends the killed driver's workers, and with them their workdir locks
    while not all(
        workdir_lock_is_free(t.workdir) for t in runs[:2] if os.path.exists(os.path.join(t.workdir, ".lock"))
    ):
        assert time.time() < deadline, "the killed sweep's trials still hold their workdirs"
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
    for trial in checkpointed:  # started again after the kill, from its checkpoint at step 10 or later
        log = open(os.path.join(trial.workdir, trials.LOG)).read()
        resumed = re.search(r"resumed from \S+ at step (\d+)", log.split("\n$ ")[-1])
        assert log.count("\n$ ") == 2 and resumed and int(resumed.group(1)) >= 10, log[-2000:]
    # The worker processes (2 slots) each ran trial after trial (4 trials, the failed one's 2 attempts), are still
    # alive, and let go of every workdir they trained in.
    records = [trials.read_record(t) for t in runs]
    pids = [record["pid"] for record in records]
    assert outcome.ran == 6 and outcome.workers < outcome.ran and len(set(pids)) < len(pids), records
    assert all(psutil.pid_exists(pid) for pid in pids), records
    # Each worker ran on one core of its own (trial.cpus = 1): side-by-side trials split the two cores.
    cores = {record["pid"]: tuple(record["cores"]) for record in records}
    assert sorted(len(c) for c in cores.values()) == [1] * len(cores) and len(set(cores.values())) == len(cores)
    assert all(workdir_lock_is_free(t.workdir) for t in runs)
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
