"""The single-process runner: the replay ratio it keeps, checkpoint/resume with the replay contents, and a short
CartPole run that must beat a random policy clearly."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from common.compat import import_reverb
from common.rl import replay, runner
from common.rl.dqn import rainbow
from common.train.loop import TrainingStopped
from common.train.metrics import read_metrics
from tests.common.rl.cartpole import dqn_cartpole, random_policy_return
from tests.common.rl.cartpole import dqn_smoke as smoke_config
from tests.helpers import REPO, subprocess_env

reverb = import_reverb()

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed


def learning_starts(config) -> int:
    """The DQN family's warm-up: min_size_to_sample complete n-step items."""
    return config.replay.min_size_to_sample + config.agent.n_step


@pytest.mark.parametrize(("backend", "ratio"), [("reverb", 0.25), ("reverb", 1.0), ("ring", 0.5)])
def test_updates_per_environment_step_equal_the_replay_ratio(tmp_path, backend, ratio):
    config = smoke_config(total_updates=150, checkpoint_every=0)
    config.replay.update(backend=backend, replay_ratio=ratio)
    final = runner.train_single_process(config, str(tmp_path), log=lambda _: None)
    assert final["updates"] == 150
    measured = final["updates"] / (final["env_steps"] - learning_starts(config))
    assert abs(measured / ratio - 1) < 0.05, final
    if backend == "reverb":  # the table's own counts: one batch per update, one item per environment step
        ahead = replay.PrefetchingDataset.items_sampled_ahead(config.replay.batch_size)
        assert 0 <= final["replay_samples"] - 150 * config.replay.batch_size <= ahead  # drawn ahead, never read
        assert final["env_steps"] - config.agent.n_step <= final["replay_inserts"] <= final["env_steps"]


@pytest.mark.parametrize("env", ["cartpole", "minatar/breakout"])
def test_rainbow_runs_with_prioritised_replay_and_keeps_the_ratio(tmp_path, env):
    config = rainbow.with_components(smoke_config(total_updates=80, checkpoint_every=0), rainbow.COMPONENTS)
    if env != "cartpole":
        config.env.update(name=env, max_episode_steps=1000, sticky_action_prob=0.1)
        config.agent.update(network="minatar", hidden=(32,))
    assert config.replay.sampler == "prioritized" and config.agent.distributional and config.agent.n_step == 3
    final = runner.train_single_process(config, str(tmp_path), log=lambda _: None)
    assert final["updates"] == 80
    assert abs(80 / (final["env_steps"] - learning_starts(config)) / 0.25 - 1) < 0.05


def test_resumed_run_restores_the_replay_contents_and_continues(tmp_path):
    first = runner.train_single_process(smoke_config(), str(tmp_path), log=lambda _: None)
    assert first["updates"] == 120
    assert replay.ReplayCheckpoints(str(tmp_path)).steps() == [60, 120]
    with open(tmp_path / "metrics.jsonl") as f:
        rows_before = len(f.readlines())

    messages = []
    second = runner.train_single_process(smoke_config(total_updates=200), str(tmp_path), log=messages.append)
    assert messages == [f"resumed at 120 updates, {int(first['env_steps'])} environment steps, 400 items in replay"]
    assert second["updates"] == 200 and second["env_steps"] > first["env_steps"]
    measured = 200 / (second["env_steps"] - learning_starts(smoke_config()))
    assert abs(measured / 0.25 - 1) < 0.05
    with open(tmp_path / "metrics.jsonl") as f:
        resumed_rows = [json.loads(line) for line in f][rows_before:]
    # 100 steps after the restart an empty table would hold ~100 items; the restored one is full.
    assert resumed_rows[0]["step"] - first["env_steps"] <= 100
    assert resumed_rows[0]["replay_size"] == 400


def test_the_replay_checkpoint_holds_the_runs_transitions(tmp_path):
    runner.train_single_process(smoke_config(total_updates=60), str(tmp_path), log=lambda _: None)
    config = smoke_config()
    checkpointer = replay.ReplayCheckpoints(str(tmp_path)).checkpointer_for(60)
    server = reverb.Server([replay.make_table(config.replay, single_process=True)], checkpointer=checkpointer)
    batch = replay.sample_batch(server.localhost_client(), "replay", 64)
    server.stop()
    assert batch.table_size == 305  # one 1-step item per environment step, all flushed before the checkpoint
    assert batch.data["observation"].shape == (64, 4) and np.all(np.abs(batch.data["observation"][:, 2]) < 0.25)
    assert set(np.unique(batch.data["bootstrap_discount"])) <= {0.0, np.float32(config.agent.discount)}


@pytest.mark.long
@pytest.mark.slow
def test_dqn_on_cartpole_clearly_beats_a_random_policy(tmp_path):
    config = dqn_cartpole()
    final = runner.train_single_process(config, str(tmp_path), log=lambda _: None)
    random_return = random_policy_return()
    assert 15 < random_return < 30
    assert final["final_return"] > 3 * random_return, final


def _truncate_files(folder) -> None:
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("damaged", ["replay", "learner"])
def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one(tmp_path, capfd, damaged):
    runner.train_single_process(smoke_config(), str(tmp_path), log=lambda _: None)
    if damaged == "replay":  # a truncated table file loads as an empty or short table: caught by its recorded size
        _truncate_files(tmp_path / "replay" / "step_120")
    else:
        _truncate_files(tmp_path / "checkpoints" / "120" / "learner")
    capfd.readouterr()
    messages = []
    second = runner.train_single_process(smoke_config(total_updates=140), str(tmp_path), log=messages.append)
    assert "warning: checkpoint step 120 cannot be read" in capfd.readouterr().err
    assert messages[0].startswith("resumed at 60 updates")
    assert second["updates"] == 140


def test_a_nan_in_the_learner_stops_before_saving_it(tmp_path, monkeypatch):
    """A learner whose loss turns NaN after update 70: the run stops with the last good checkpoint (60) intact."""
    from common.rl import agents
    from common.train.loop import NonFiniteLossError

    make_builder = agents.make_builder

    class Poisoned:
        def __init__(self, learner):
            self._learner = learner

        def __getattr__(self, name):
            return getattr(self._learner, name)

        def step(self):
            metrics = self._learner.step()
            return dict(metrics, loss=np.nan) if self._learner.updates > 70 else metrics

    def poisoned_builder(config):
        builder = make_builder(config)
        make_learner = builder.make_learner
        builder.make_learner = lambda *args, **kwargs: Poisoned(make_learner(*args, **kwargs))
        return builder

    monkeypatch.setattr(runner.agents, "make_builder", poisoned_builder)
    expected = r"learner loss became NaN/Inf before update \d+.*last good checkpoint is update 60"
    with pytest.raises(NonFiniteLossError, match=expected):
        runner.train_single_process(smoke_config(), str(tmp_path), log=lambda _: None)
    assert replay.ReplayCheckpoints(str(tmp_path)).steps() == [60]
    assert sorted(int(name) for name in os.listdir(tmp_path / "checkpoints") if name.isdigit()) == [60]


def _run_to_the_end(config, workdir) -> tuple[dict, object, list[float], list[dict]]:
    """(final, learner state, episode returns, logged rows without the wall-clock rates) of one run."""
    seen = {}
    final = runner.train_single_process(
        config,
        str(workdir),
        log=lambda _: None,
        on_finish=lambda learner, stats: seen.update(learner=learner.save(), returns=list(stats.returns)),
    )
    rows = [{k: v for k, v in row.items() if k not in runner.CLOCK_METRICS} for row in read_metrics(str(workdir))]
    return final, seen["learner"], seen["returns"], rows


def _same_arrays(a, b) -> bool:
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b, strict=True))


@pytest.mark.long  # three short runs: ~15 s of CPU
def test_two_ring_buffer_runs_with_one_seed_end_bit_identical_and_another_seed_does_not(tmp_path):
    """Environment, exploration, network initialisation and replay sampling all draw from streams seeded by
    config.seed, and nothing else (no thread, no clock) decides what happens, so one seed gives one run."""
    config = smoke_config(total_updates=120, checkpoint_every=0, log_every=50)
    config.replay.backend = "ring"
    first, learner, returns, rows = _run_to_the_end(config, tmp_path / "a")
    again = _run_to_the_end(config, tmp_path / "b")
    assert first == again[0] and returns == again[2] and rows == again[3]
    assert _same_arrays(learner, again[1])
    assert len(returns) >= 5  # several episodes, so the returns compare something
    config.seed = 1
    other = _run_to_the_end(config, tmp_path / "c")
    assert not _same_arrays(learner, other[1]) and returns != other[2]


class SigtermAtStep:
    """CartPole that sends this process a real SIGTERM from inside step `at` (once), as a kill would arrive."""

    def __init__(self, env, at: int):
        self.env, self.at, self.steps = env, at, 0

    def __getattr__(self, name):
        if name.startswith("__"):  # pickle probes for dunders before `env` is set
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self):
        return self.env.reset()

    def step(self, action):
        self.steps += 1
        if self.steps == self.at:
            signal.raise_signal(signal.SIGTERM)
        return self.env.step(action)


@pytest.mark.long  # two short runs and a resume: ~15 s of CPU
def test_a_killed_ring_buffer_run_resumes_to_the_same_parameters_and_returns(tmp_path, monkeypatch):
    """The checkpoint holds the learner, the episode in progress, the n-step window, the replay contents and every
    random stream, so stopping mid-episode and resuming changes nothing."""
    config = smoke_config(total_updates=120, checkpoint_every=0, log_every=50)
    config.replay.update(backend="ring")
    config.agent.n_step = 3  # items still waiting for their return when the signal comes
    final, learner, returns, _ = _run_to_the_end(config, tmp_path / "whole")

    make_env = runner.make_env
    monkeypatch.setattr(runner, "make_env", lambda *args: SigtermAtStep(make_env(*args), at=331))
    with pytest.raises(TrainingStopped):
        runner.train_single_process(config, str(tmp_path / "cut"), log=lambda _: None)
    monkeypatch.setattr(runner, "make_env", make_env)
    messages = []
    resumed = {}
    again = runner.train_single_process(
        config,
        str(tmp_path / "cut"),
        log=messages.append,
        on_finish=lambda learner, stats: resumed.update(learner=learner.save(), returns=list(stats.returns)),
    )
    assert messages[0].startswith("resumed at ") and "331 environment steps" in messages[0]
    assert again == final and resumed["returns"] == returns
    assert _same_arrays(resumed["learner"], learner)


_TRAIN_IN_SUBPROCESS = """
import json, sys
from ml_collections import ConfigDict
from common.rl import runner
runner.train_single_process(ConfigDict(json.loads(sys.argv[1])), sys.argv[2], log=lambda _: None)
"""


@pytest.mark.long  # a run in a subprocess (~7 s of imports), a whole run and a resume: ~25 s of CPU
def test_a_ring_buffer_run_killed_after_a_periodic_checkpoint_resumes_to_the_same_parameters_and_returns(tmp_path):
    """SIGKILL leaves no chance to save: the resumed run starts from the last periodic checkpoint, which must hold
    the whole acting side (environment mid-episode, n-step window, replay contents, random streams) as a stop
    signal's does."""
    config = smoke_config(total_updates=120, checkpoint_every=40, log_every=50)
    config.replay.update(backend="ring")
    config.agent.n_step = 3  # items still waiting for their return when the checkpoint is written
    final, learner, returns, _ = _run_to_the_end(config, tmp_path / "whole")

    cut = tmp_path / "cut"
    process = subprocess.Popen(
        [sys.executable, "-c", _TRAIN_IN_SUBPROCESS, config.to_json(), str(cut)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (cut / "checkpoints" / "40").exists():  # Orbax renames a finished save into place
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert not (cut / "checkpoints" / "120").exists(), "the run ended before it was killed"

    messages = []
    resumed = {}
    again = runner.train_single_process(
        config,
        str(cut),
        log=messages.append,
        on_finish=lambda learner, stats: resumed.update(learner=learner.save(), returns=list(stats.returns)),
    )
    assert re.fullmatch(r"resumed at (40|80) updates, \d+ environment steps, \d+ items in replay", messages[0])
    assert again == final and resumed["returns"] == returns
    assert _same_arrays(resumed["learner"], learner)
