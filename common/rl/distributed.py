"""Distributed acting: one Reverb server process, `run.num_actors` actor processes that insert n-step items over
gRPC on localhost, and the learner in the launching process.

Here the SampleToInsertRatio limiter does the pacing (common/rl/replay.py): actors block when they run ahead of
the learner's sampling, the learner blocks when they fall behind, so the replay ratio holds without a schedule.
The learner broadcasts its parameters through a second table on the same server ("variables", one item: the update
count followed by the parameter leaves) every `run.variables_every` updates; actors fetch it every
`run.variables_every` of their own steps and set epsilon from the update count.

A thread in the learner watches the actors: one that dies is reported (exit code) and started again with a new
seed, while the learner goes on; after `run.max_actor_restarts` restarts the run stops with an error. Actor pids
are written to `<workdir>/actors.json`, each actor's finished episodes to `<workdir>/actors/actor_<i>.jsonl`.
Checkpoints are as in the single-process runner (Orbax for the learner, Reverb's checkpointer for the replay).
Actors insert new items at priority 1 (Acme's rule); the single-process runner uses the largest priority seen.
"""

import contextlib
import json
import multiprocessing
import os
import threading
import time

import jax
import numpy as np
import portpicker
import reverb
from flax import nnx
from ml_collections import ConfigDict

from common.rl import replay
from common.rl.dqn.actor import Actor
from common.rl.dqn.learner import Learner
from common.rl.dqn.networks import make_network
from common.rl.runner import make_env
from common.train.checkpoint import Checkpointer
from common.train.metrics import MetricWriter

VARIABLES = "variables"
REPLAY = "replay"


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


def _serve(replay_config: dict, port: int, checkpointer) -> None:
    """The server process: the replay table with the ratio-keeping limiter, and the variables table."""
    table = replay.make_table(ConfigDict(replay_config), single_process=False, name=REPLAY)
    server = reverb.Server([table, variables_table()], port=port, checkpointer=checkpointer)
    server.wait()


def _act(config_dict: dict, address: str, actor_id: int, seed: int, episodes_path: str) -> None:
    """An actor process: acts with the newest parameters it fetched and writes n-step items until terminated."""
    config = ConfigDict(config_dict)
    env = make_env(config, seed)
    graphdef, params = nnx.split(make_network(config.agent, env.observation_shape, env.num_actions, nnx.Rngs(0)))
    actor = Actor(config.agent, graphdef, env.num_actions, seed=seed)
    client = reverb.Client(address)
    writer = replay.NStepWriter(client, REPLAY, n_step=int(config.agent.n_step), discount=float(config.agent.discount))
    updates, params = fetch_variables(client, params)
    fetch_every = int(config.run.variables_every)
    observation = env.reset()
    writer.add_first(observation)
    steps, episode_return = 0, 0.0
    with open(episodes_path, "a") as episodes:
        while True:
            action = actor.select_action(params, observation, updates)
            step = env.step(action)
            writer.add(action, step.reward, step.observation, step.terminated, step.truncated)
            steps += 1
            episode_return += step.reward
            if step.terminated or step.truncated:
                episodes.write(json.dumps({"actor": actor_id, "updates": updates, "return": episode_return}) + "\n")
                episodes.flush()
                episode_return = 0.0
                observation = env.reset()
                writer.add_first(observation)
            else:
                observation = step.observation
            if steps % fetch_every == 0:
                updates, params = fetch_variables(client, params)


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
    """Starts the actor processes and restarts the ones that die, from a watcher thread."""

    def __init__(self, config: ConfigDict, address: str, workdir: str, *, log, on_failure):
        self._context = multiprocessing.get_context("spawn")
        self._config, self._address, self._log, self._on_failure = config, address, log, on_failure
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
        limit = int(self._config.run.get("max_actor_restarts", 10))
        while not self._stop.wait(0.2):
            for actor_id, process in enumerate(self._processes):
                if process.is_alive():
                    continue
                if self.restarts >= limit:
                    self.failed = f"actor {actor_id} died (exit code {process.exitcode}) after {limit} restarts"
                    self._log(self.failed)
                    self._on_failure()  # wakes a learner blocked on sampling: its next call fails
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
        self._watcher.join()
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(timeout=10)


def _inserts(client: reverb.Client) -> int:
    """Items inserted into the replay table since the server started: the actors' environment steps."""
    return int(client.server_info()[REPLAY].rate_limiter_info.insert_stats.completed)


def _wait_for_server(client: reverb.Client, server: multiprocessing.Process, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not server.is_alive():
            raise RuntimeError(f"the Reverb server process exited with code {server.exitcode}")
        try:
            client.server_info(timeout=1)
            return
        except Exception:  # noqa: BLE001 (the server is still starting: connection refused or deadline)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def train_distributed(config: ConfigDict, workdir: str, *, log=print) -> dict[str, float]:
    """Trains for config.run.total_updates updates with a server process and run.num_actors actor processes."""
    env = make_env(config, config.seed)
    total_updates = int(config.run.total_updates)
    learner = Learner(
        config.agent, env.observation_shape, env.num_actions, seed=config.seed, total_updates=total_updates
    )
    checkpoint_every = int(config.run.checkpoint_every)
    checkpointer = Checkpointer(workdir, save_every=max(checkpoint_every, 1), async_save=False)
    start_step = checkpointer.latest_step()
    if start_step is not None:
        learner.state = checkpointer.restore({"learner": learner.state}, start_step)["learner"]
    replay_checkpoints = replay.ReplayCheckpoints(workdir)
    port = portpicker.pick_unused_port()
    address = f"localhost:{port}"
    context = multiprocessing.get_context("spawn")
    server = context.Process(
        target=_serve,
        args=(config.replay.to_dict(), port, replay_checkpoints.checkpointer_for(start_step)),
        daemon=True,
    )
    with _child_environment():
        server.start()
    client = reverb.Client(address)
    actors = None
    writer = MetricWriter(workdir, resume_step=learner.updates)
    log_every = max(int(config.run.log_every * config.replay.replay_ratio), 1)
    prioritized = config.replay.sampler == "prioritized"
    try:
        _wait_for_server(client, server)
        if start_step is not None:
            log(f"resumed at {start_step} updates, {replay.table_size(client, REPLAY)} items in replay")
        publish_variables(client, learner.updates, learner.online_params)
        actors = ActorPool(config, address, workdir, log=log, on_failure=server.terminate)
        batches = replay.batches(client, REPLAY, int(config.replay.batch_size))
        tick, tick_updates, tick_inserts, losses = time.perf_counter(), learner.updates, _inserts(client), []
        while learner.updates < total_updates:
            if actors.failed:
                raise RuntimeError(actors.failed)
            try:
                batch = next(batches)
            except Exception as error:
                raise RuntimeError(actors.failed or f"sampling from the replay server failed: {error}") from error
            priorities, metrics = learner.update(batch)
            losses.append(metrics["loss"])
            if prioritized:
                replay.update_priorities(client, REPLAY, batch.keys, priorities)
            if learner.updates % int(config.run.variables_every) == 0:
                publish_variables(client, learner.updates, learner.online_params)
            if checkpoint_every and (learner.updates % checkpoint_every == 0 or learner.updates == total_updates):
                replay_checkpoints.save(client, learner.updates)
                checkpointer.maybe_save(learner.updates, {"learner": learner.state}, force=True)
            if learner.updates % log_every == 0 or learner.updates == total_updates:
                now, inserts = time.perf_counter(), _inserts(client)
                writer.write(
                    learner.updates,
                    {
                        "loss": float(np.mean([float(loss) for loss in losses])),
                        "replay_size": batch.table_size,
                        "updates_per_second": (learner.updates - tick_updates) / max(now - tick, 1e-9),
                        "env_steps": inserts,
                        "env_steps_per_second": (inserts - tick_inserts) / max(now - tick, 1e-9),
                        "actor_restarts": actors.restarts,
                    },
                )
                tick, tick_updates, tick_inserts, losses = now, learner.updates, inserts, []
        samples = client.server_info()[REPLAY].rate_limiter_info.sample_stats.completed
        inserts = _inserts(client)
    finally:
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
    }
    first_final_update = (1 - config.run.final_fraction) * total_updates
    recent = [row["return"] for row in actors.episodes() if row["updates"] >= first_final_update]
    if recent:
        final["final_return"] = float(np.mean(recent))
    return final
