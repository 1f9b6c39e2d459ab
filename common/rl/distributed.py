"""Distributed acting for any off-policy agent (common/rl/agent.py): one Reverb server process with the agent's
replay tables, `run.num_actors` actor processes that write into them over gRPC on localhost (the builder's adder),
and the learner in the launching process (reading through the builder's dataset).

Here the SampleToInsertRatio limiter does the pacing (common/rl/replay.py): actors block when they run ahead of
the learner's sampling, the learner blocks when they fall behind, so the replay ratio holds without a schedule.
The learner broadcasts its parameters through a second table on the same server ("variables", one item: the update
count followed by the parameter leaves) every `run.variables_every` updates; actors fetch it every
`run.variables_every` of their own steps and set epsilon from the update count.

A thread in the learner watches the server and the actors: an actor that dies is reported (exit code) and started
again with a new seed, while the learner goes on; a server that dies, or an actor past `run.max_actor_restarts`
restarts, stops the run with an error within seconds (the watcher ends the process if the learner stays blocked
on a sample from a server that is gone). SIGTERM/SIGINT save the learner and the replay, then stop. Children
exit when the learner process is gone however it ended (even SIGKILL), so no run leaves processes behind. Actor pids
are written to `<workdir>/actors.json`, each actor's finished episodes to `<workdir>/actors/actor_<i>.jsonl`.
Checkpoints are as in the single-process runner (Orbax for the learner, Reverb's checkpointer for the replay).
An on-policy agent has no tables to share and is refused when the config is checked.

Initial priorities: each actor writes through its builder's `make_adder(client, networks, variables)`, which may
score new items with the actor's copy of the parameters. The DQN family on a prioritised table does, as Ape-X's actors
do (common/rl/dqn/builder.py); on a uniform table items enter at priority 1 (Acme's rule); the single-process runner
inserts at the largest priority seen instead (Dopamine's rule).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import threading
import time

import jax
import numpy as np
import portpicker
from ml_collections import ConfigDict

from common.compat import import_reverb
from common.errors import UserError
from common.rl import agents, replay
from common.rl.agent import VariableClient, split_params
from common.rl.config import ConfigError, RunConfig
from common.rl.runner import check_finite, environment_spec, make_env, mean_metrics
from common.train.checkpoint import Checkpointer, StopRequest
from common.train.loop import TrainingStopped
from common.train.metrics import MetricWriter

reverb = import_reverb()

VARIABLES = "variables"


def variables_table() -> reverb.Table:
    """Holds only the newest parameters: FIFO of size 1, sampled once at least one was inserted."""
    return reverb.Table(
        name=VARIABLES,
        sampler=reverb.selectors.Fifo(),
        remover=reverb.selectors.Fifo(),
        max_size=1,
        rate_limiter=reverb.rate_limiters.MinSize(1),
    )


def publish_variables(client: reverb.Client, updates: int, params) -> None:
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]
    client.insert([np.asarray(updates, np.int64), *leaves], priorities={VARIABLES: 1.0})


def fetch_variables(client: reverb.Client, like_params) -> tuple[int, object]:
    """The newest (updates, params), unflattened into the structure of `like_params` (blocks until published)."""
    sample = next(client.sample(VARIABLES, num_samples=1, emit_timesteps=False))
    updates, *leaves = (column[0] for column in sample.data)  # an `insert` is a sequence of one step
    return int(updates), jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like_params), leaves)


class ReverbVariableSource:
    """The learner's variables as an actor process sees them: the newest item of the variables table."""

    def __init__(self, client: reverb.Client, like_params):
        self._client, self._like = client, like_params

    def get_variables(self) -> tuple[int, object]:
        return fetch_variables(self._client, self._like)


SECONDS_TO_UNBLOCK = 20.0  # how long the watcher waits for a learner blocked on a dead server before ending it


def _exit_with_parent() -> None:
    """In a child process: exit as soon as the process that started it is gone (reparented), whatever killed it."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _serve(config_dict: dict, port: int, checkpointer) -> None:
    """The server process: the agent's tables (their limiters keep the ratio) and the variables table."""
    _exit_with_parent()
    tables = agents.make_builder(ConfigDict(config_dict)).make_replay_tables(single_process=False)
    server = reverb.Server([*tables, variables_table()], port=port, checkpointer=checkpointer)
    server.wait()


def _act(config_dict: dict, address: str, actor_id: int, seed: int, episodes_path: str) -> None:
    """An actor process: acts with the newest parameters it fetched and writes through the agent's adder until
    terminated."""
    _exit_with_parent()
    builder = agents.make_builder(ConfigDict(config_dict))
    env = make_env(builder.experiment.env, seed)
    spec = environment_spec(env)
    networks = builder.make_networks(spec, seed=0)
    client = reverb.Client(address)
    source = ReverbVariableSource(client, split_params(networks)[1])
    variables = VariableClient(source, update_period=builder.experiment.run.variables_every)
    adder = builder.make_adder(client, networks, variables)
    actor = builder.make_actor(networks, spec, variables, adder, seed=seed)
    observation = env.reset()
    actor.observe_first(observation)
    episode_return = 0.0
    with open(episodes_path, "a") as episodes:
        while True:
            action = actor.select_action(observation)
            step = env.step(action)
            actor.observe(action, step)
            episode_return += step.reward
            if step.terminated or step.truncated:
                row = {"actor": actor_id, "updates": variables.updates, "return": episode_return}
                episodes.write(json.dumps(row) + "\n")
                episodes.flush()
                episode_return = 0.0
                observation = env.reset()
                actor.observe_first(observation)
            else:
                observation = step.observation
            actor.update()


@contextlib.contextmanager
def _child_environment():
    """Children run JAX on CPU (many actors must not each claim the accelerator) and quietly."""
    saved = {key: os.environ.get(key) for key in ("JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ActorPool:
    """Starts the actor processes and restarts the ones that die, and watches the server, from a watcher thread."""

    def __init__(self, config: ConfigDict, address: str, workdir: str, *, log, on_failure, server=None):
        """config: the whole ConfigDict, which each actor process checks and types again. on_failure(message) runs
        on the watcher thread when the run cannot go on (the server died, or an actor ran out of restarts)."""
        self._context = multiprocessing.get_context("spawn")
        self._config, self._address, self._log, self._on_failure = config, address, log, on_failure
        self._server = server
        self._episodes_dir = os.path.join(workdir, "actors")
        self._pids_path = os.path.join(workdir, "actors.json")
        os.makedirs(self._episodes_dir, exist_ok=True)
        self.restarts, self.failed = 0, None
        self._processes = [self._start(i) for i in range(int(config.run.num_actors))]
        self._write_pids()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _start(self, actor_id: int) -> multiprocessing.Process:
        seed = int(self._config.seed) + 1 + actor_id + 1000 * self.restarts
        path = os.path.join(self._episodes_dir, f"actor_{actor_id}.jsonl")
        process = self._context.Process(
            target=_act, args=(self._config.to_dict(), self._address, actor_id, seed, path), daemon=True
        )
        with _child_environment():
            process.start()
        return process

    def _write_pids(self) -> None:
        with open(self._pids_path + ".tmp", "w") as f:
            json.dump([process.pid for process in self._processes], f)
        os.replace(self._pids_path + ".tmp", self._pids_path)

    def _watch(self) -> None:
        limit = int(self._config.run.get("max_actor_restarts", RunConfig.max_actor_restarts))
        while not self._stop.wait(0.2):
            if self._server is not None and not self._server.is_alive():
                self.failed = f"the Reverb server process exited with code {self._server.exitcode}"
                self._on_failure(self.failed)
                return
            for actor_id, process in enumerate(self._processes):
                if process.is_alive():
                    continue
                if self.restarts >= limit:
                    self.failed = (
                        f"actor {actor_id} died (exit code {process.exitcode}) after {limit} restarts "
                        "(run.max_actor_restarts)"
                    )
                    self._on_failure(self.failed)
                    return
                self.restarts += 1
                self._log(f"actor {actor_id} (pid {process.pid}) died with exit code {process.exitcode}; restarting")
                self._processes[actor_id] = self._start(actor_id)
                self._write_pids()

    def episodes(self) -> list[dict]:
        rows = []
        for name in sorted(os.listdir(self._episodes_dir)):
            with open(os.path.join(self._episodes_dir, name)) as f:
                rows += [json.loads(line) for line in f if line.endswith("\n")]
        return rows

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._watcher:
            self._watcher.join()
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(timeout=10)


def _wait_for_server(client: reverb.Client, server: multiprocessing.Process, timeout_s: float = 600.0) -> None:
    """Returns once the server answers; a live server gets `timeout_s` to start (on a loaded machine its imports
    of TensorFlow and Reverb alone have taken over 2 minutes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not server.is_alive():
            raise DistributedRunError(f"the Reverb server process exited with code {server.exitcode} while starting")
        try:
            client.server_info(timeout=1)
            return
        except Exception:  # noqa: BLE001 (the server is still starting: connection refused or deadline)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def train_distributed(config: ConfigDict, workdir: str, *, log=print) -> dict[str, float]:
    """Trains the off-policy agent `config.agent.name` for config.run.total_updates updates with a server process
    and run.num_actors actor processes."""
    builder = agents.make_builder(config)
    if not builder.off_policy:
        off_policy = ", ".join(name for name, agent in agents.AGENTS.items() if agent.off_policy)
        raise ConfigError(
            f"agent {config.agent.name!r} learns on-policy from its own rollouts and has no replay table to share; "
            f"the distributed runner takes an off-policy agent: {off_policy}"
        )
    experiment, run = builder.experiment, builder.experiment.run
    env = make_env(experiment.env, experiment.seed)
    tables = [table.name for table in builder.make_replay_tables(single_process=False)]
    port = portpicker.pick_unused_port()
    address = f"localhost:{port}"
    client = reverb.Client(address)
    learner = builder.make_learner(
        builder.make_networks(environment_spec(env), experiment.seed), builder.make_dataset(client)
    )
    checkpointer = Checkpointer(workdir, save_every=max(run.checkpoint_every, 1), async_save=False)
    start_step = checkpointer.latest_step()
    if start_step is not None:
        learner.restore(checkpointer.restore({"learner": learner.save()}, start_step)["learner"])
    replay_checkpoints = replay.ReplayCheckpoints(workdir)
    context = multiprocessing.get_context("spawn")
    server = context.Process(
        target=_serve, args=(config.to_dict(), port, replay_checkpoints.checkpointer_for(start_step)), daemon=True
    )
    with _child_environment():
        server.start()
    with open(os.path.join(workdir, "server.pid"), "w") as f:
        f.write(str(server.pid))
    actors = None
    writer = MetricWriter(workdir, resume_step=learner.updates)
    stop = StopRequest()
    main_thread_done = threading.Event()

    def fail(message: str) -> None:
        """From the watcher: end the children (which wakes a learner blocked on a sample), and the process too
        if the learner is still blocked after SECONDS_TO_UNBLOCK (a gRPC read from a dead server may never end)."""
        log(f"error: {message}")
        server.terminate()
        if actors is not None:
            actors.stop()
        if not main_thread_done.wait(SECONDS_TO_UNBLOCK):
            print(f"error: {message}; the learner did not return, ending it", file=sys.stderr, flush=True)
            os._exit(1)

    def why_gone() -> str | None:
        """Why a Reverb call failed, when the server or the actors are gone: the watcher's verdict, or the server's
        own exit (a write can fail on the closed connection before the watcher's next look); None otherwise."""
        if actors is not None and actors.failed:
            return actors.failed
        server.join(timeout=1.0)  # a killed server's sockets close just before it is reaped
        return None if server.is_alive() else f"the Reverb server process exited with code {server.exitcode}"

    log_every = max(int(run.log_every * experiment.replay.replay_ratio), 1)
    try:
        _wait_for_server(client, server)
        if start_step is not None:
            log(f"resumed at {start_step} updates, {_size(client, tables)} items in replay")
        publish_variables(client, *learner.get_variables())
        actors = ActorPool(config, address, workdir, log=log, on_failure=fail, server=server)
        tick, tick_updates, tick_inserts = (
            time.perf_counter(),
            learner.updates,
            replay.limiter_counts(client, tables)[0],
        )
        metrics = []
        while learner.updates < run.total_updates:
            if actors.failed:
                raise DistributedRunError(actors.failed)
            metrics.append(learner.step())
            updates = learner.updates
            if updates % run.variables_every == 0:
                publish_variables(client, *learner.get_variables())
            stopping = stop.requested is not None
            on_period = run.checkpoint_every and (updates % run.checkpoint_every == 0 or updates == run.total_updates)
            if on_period or stopping:
                check_finite(metrics, updates, checkpointer.latest_step(), checkpointer.directory)
                replay_checkpoints.save(client, updates)
                checkpointer.maybe_save(updates, {"learner": learner.save()}, force=True)
            if stopping:
                raise TrainingStopped(stop.requested, updates, checkpointer.directory)
            if updates % log_every == 0 or updates == run.total_updates:
                now, inserts = time.perf_counter(), replay.limiter_counts(client, tables)[0]
                row = {
                    **mean_metrics(metrics),
                    "replay_size": _size(client, tables),
                    "updates_per_second": (updates - tick_updates) / max(now - tick, 1e-9),
                    "env_steps": inserts,  # the DQN family's adder inserts one item per environment step
                    "env_steps_per_second": (inserts - tick_inserts) / max(now - tick, 1e-9),
                    "actor_restarts": actors.restarts,
                }
                check_finite(metrics, updates, checkpointer.latest_step(), checkpointer.directory)
                writer.write(updates, row)
                tick, tick_updates, tick_inserts, metrics = now, updates, inserts, []
        inserts, samples = replay.limiter_counts(client, tables)
    except (TrainingStopped, DistributedRunError):
        raise
    except Exception:  # a sample, an insert or a count on a server that is gone: say so, not gRPC's words
        message = why_gone()
        if message is None:
            raise
        raise DistributedRunError(message) from None
    finally:
        main_thread_done.set()
        stop.restore_handlers()
        if actors is not None:
            actors.stop()
        server.terminate()
        server.join(timeout=10)
        checkpointer.close()
        writer.close()
    final = {
        "updates": float(learner.updates),
        "actor_restarts": float(actors.restarts),
        "samples_per_insert": samples / max(inserts, 1),
        # updates per environment step after the warm-up, as one process counts it (one insert per step)
        "replay_ratio": learner.updates / max(inserts - builder.learning_starts(), 1),
    }
    first_final_update = (1 - run.final_fraction) * run.total_updates
    recent = [row["return"] for row in actors.episodes() if row["updates"] >= first_final_update]
    if recent:
        final["final_return"] = float(np.mean(recent))
    return final


class DistributedRunError(UserError, RuntimeError):
    """The server or the actors are gone and the run cannot go on; the last checkpoint is intact."""

    exit_code = 1  # the run failed; nothing in the command was wrong


def _size(client: reverb.Client, tables: list[str]) -> int:
    return sum(replay.table_size(client, table) for table in tables)
