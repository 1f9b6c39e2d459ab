"""The single-process runner, for any agent (common/rl/agent.py): one thread acts and learns in turn.

Learning runs on the agent's schedule instead of behind a rate limiter (which would deadlock one thread, see
common/rl/replay.py): after each environment step the runner steps the learner until `builder.updates_due(env_steps)`
updates are made. For the DQN family that is floor(replay_ratio * (env_steps - learning_starts)), so the replay ratio
holds to within one update whatever the replay (a Reverb table's insert and sampling threads only move data: each
update reads one batch); for an on-policy agent, one update per complete rollout. A run is `run.total_updates`
learner updates long, as in the replay paper: environment steps follow from the schedule.

With the ring buffer a run is a function of config.seed: the environment, the exploration, the network
initialisation and the buffer's sampling each draw from a stream seeded by it, and no thread or clock decides
anything. With Reverb it is not: Reverb's samplers draw from a stream no client can seed, and the timing of Reverb's
own writer and sampler workers decides which items a batch can see.

Checkpoints (every `run.checkpoint_every` updates, at the end, and on SIGTERM/SIGINT) hold the learner's state, the
counters and the episode record (Orbax) and the agent's Reverb tables (Reverb's checkpointer,
`replay.ReplayCheckpoints`); rerunning the same command restores them and continues. Where the actor and the replay
can give their state (the DQN family on the ring buffer), every checkpoint, periodic or not, also holds the acting
side (`acting_snapshot`: the environment mid-episode, the n-step window, the replay contents, every random stream),
and the resumed run ends exactly as an uninterrupted one would, even after a SIGKILL (from the last periodic
checkpoint); otherwise an episode (or an on-policy rollout) cut by a restart starts afresh.

Config: seed; env (name, max_episode_steps, sticky_action_prob); agent (name, then the agent's fields:
common/rl/agents.py); replay for off-policy agents (backend, capacity, sampler, ...); run (total_updates, log_every,
checkpoint_every, final_fraction): common/rl/config.py, checked before the environment starts.
The score, `final_return`, is the mean return of the episodes that ended in the last run.final_fraction of the
environment steps after the warm-up.
"""

from __future__ import annotations

import json
import pickle
import time

import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from common.compat import import_reverb
from common.rl import agents, replay
from common.rl.agent import EnvironmentSpec, VariableClient
from common.rl.config import EnvConfig
from common.rl.environments import Environment, make_environment
from common.train.checkpoint import Checkpointer, StopRequest
from common.train.loop import NonFiniteLossError, TrainingStopped
from common.train.metrics import MetricWriter

reverb = import_reverb()

EPISODES_PART = "episodes"  # the checkpoint part holding EpisodeStats
ACTING_PART = "acting"  # the checkpoint part holding `acting_snapshot`
# The logged rates read off the clock: the only part of a logged row that differs between two runs of one seed.
CLOCK_METRICS = ("updates_per_second", "env_steps_per_second", "cpu_cores")


def make_env(config: EnvConfig, seed: int) -> Environment:
    options = {"max_episode_steps": config.max_episode_steps, "sticky_action_prob": config.sticky_action_prob}
    return make_environment(config.name, seed=seed, **{k: v for k, v in options.items() if v is not None})


def environment_spec(env: Environment) -> EnvironmentSpec:
    return EnvironmentSpec(tuple(env.observation_shape), env.num_actions)


class EpisodeStats:
    """Returns of finished episodes, with the environment step each ended at."""

    def __init__(self):
        self.returns: list[float] = []
        self.end_steps: list[int] = []
        self.current = 0.0

    def record(self, reward: float, done: bool, env_steps: int) -> None:
        self.current += reward
        if done:
            self.returns.append(self.current)
            self.end_steps.append(env_steps)
            self.current = 0.0

    def mean_since(self, env_steps: int) -> float | None:
        recent = [r for r, end in zip(self.returns, self.end_steps, strict=True) if end > env_steps]
        return float(np.mean(recent)) if recent else None

    def to_json(self) -> dict[str, str]:
        """What a checkpoint keeps (one JSON string, whatever the number of episodes), so a resumed run scores the
        episodes from before the restart too."""
        record = {"returns": self.returns, "end_steps": self.end_steps, "current": self.current}
        return {"record": json.dumps(record)}

    @classmethod
    def from_json(cls, saved: dict[str, str]) -> EpisodeStats:
        record = json.loads(saved["record"])
        stats = cls()
        stats.returns, stats.end_steps, stats.current = record["returns"], record["end_steps"], record["current"]
        return stats

    def final_score(self, env_steps: int) -> float:
        """The mean return of the episodes that ended after `env_steps`; if none did (one long episode spans the
        whole window), the return so far of the unfinished episode, a lower bound of its return."""
        recent = self.mean_since(env_steps)
        return recent if recent is not None else self.current


def train_single_process(config: ConfigDict, workdir: str, *, log=print, on_finish=None) -> dict[str, float]:
    """Trains the agent `config.agent.name` for config.run.total_updates updates in `workdir` (resuming from its
    checkpoints). on_finish(learner, episode_stats), if given, sees the final state after the last update (tests
    compare runs through it)."""
    builder = agents.make_builder(config)
    experiment = builder.experiment
    env = make_env(experiment.env, experiment.seed)
    spec = environment_spec(env)
    networks = builder.make_networks(spec, experiment.seed)
    total_updates, checkpoint_every = experiment.run.total_updates, experiment.run.checkpoint_every
    checkpointer = Checkpointer(workdir, save_every=max(checkpoint_every, 1), async_save=False)
    table_names = [table.name for table in builder.make_replay_tables(single_process=True)]
    replay_checkpoints = replay.ReplayCheckpoints(workdir) if table_names else None

    def open_at(step: int | None):
        """The replay server, buffer and learner as saved at `step` (None: fresh), and the acting side saved with
        them (None if none was), read here so that a damaged step is skipped for an older one as a whole."""
        tables = builder.make_replay_tables(single_process=True)
        server = client = None
        if tables:
            server = reverb.Server(tables, checkpointer=replay_checkpoints.checkpointer_for(step))
            client = server.localhost_client()
        buffer = builder.make_replay(spec, client)
        learner = builder.make_learner(networks, buffer)
        counters, stats, acting = {"env_steps": 0, "episodes": 0}, EpisodeStats(), None
        if step is not None:
            try:
                learner.restore(checkpointer.restore({"learner": learner.save()}, step)["learner"])
                counters = checkpointer.load_raw("counters", step)
                if EPISODES_PART in checkpointer.part_names(step):  # absent from checkpoints of older runs
                    saved = checkpointer.restore({EPISODES_PART: EpisodeStats().to_json()}, step)[EPISODES_PART]
                    stats = EpisodeStats.from_json(saved)
                expected = int(counters.get("replay_items", -1))
                if expected >= 0 and buffer.size() != expected:
                    raise ValueError(f"its replay holds {buffer.size()} items, the checkpoint recorded {expected}")
                if ACTING_PART in checkpointer.part_names(step):
                    acting = unpickle_acting(checkpointer.load_raw(ACTING_PART, step)["pickle"])
            except Exception:
                if server is not None:
                    buffer.close()
                    server.stop()
                raise
        return server, client, buffer, learner, counters, stats, acting

    start_step = None
    if checkpointer.all_steps():
        start_step, opened = checkpointer.open_newest_readable(open_at)
    else:
        opened = open_at(None)
    server, client, buffer, learner, counters, stats, acting = opened
    actor = builder.make_actor(networks, spec, VariableClient(learner), buffer, seed=experiment.seed + 1)
    env_steps, episodes = int(counters["env_steps"]), int(counters["episodes"])
    if start_step is not None:
        log(f"resumed at {start_step} updates, {env_steps} environment steps, {buffer.size()} items in replay")

    last_saved = [start_step]

    def save(updates: int) -> None:
        if updates == last_saved[0]:
            return
        check_finite(metrics, updates, last_saved[0], checkpointer.directory)  # never save a diverged learner
        last_saved[0] = updates
        if replay_checkpoints is not None:
            buffer.flush()  # items still in the writer belong to this checkpoint too
            replay_checkpoints.save(client, updates)  # the replay first: see ReplayCheckpoints
        counters = {
            "env_steps": jnp.asarray(env_steps, jnp.int32),
            "episodes": jnp.asarray(episodes, jnp.int32),
            "replay_items": jnp.asarray(buffer.size() if client is not None else -1, jnp.int32),  # checked on load
        }
        parts = {"learner": learner.save(), "counters": counters, EPISODES_PART: stats.to_json()}
        snapshot = acting_snapshot(env, observation, actor, buffer)
        if snapshot is not None:
            parts[ACTING_PART] = {"pickle": snapshot}
        checkpointer.maybe_save(updates, parts, force=True)

    writer = MetricWriter(workdir, resume_step=env_steps)
    replay_counts, metrics = {}, []
    log_every = experiment.run.log_every
    stop = StopRequest()

    def learn_until_due() -> None:
        """The learner updates due after `env_steps` steps, saving on the checkpoint period."""
        while learner.updates < builder.updates_due(env_steps):
            metrics.append(learner.step())
            if checkpoint_every and learner.updates % checkpoint_every == 0:
                save(learner.updates)

    if acting is not None:
        env, observation = restore_acting(acting, actor, buffer)
        learn_until_due()  # those due after a save made between two updates of one environment step
        actor.update()
    else:
        stats.current = 0.0  # an episode cut by a restart starts afresh
        observation = env.reset()
        actor.observe_first(observation)
    window_start, window_cpu = time.perf_counter(), time.process_time()
    window_updates, window_steps = learner.updates, env_steps
    try:
        while learner.updates < total_updates:
            action = actor.select_action(observation)
            step = env.step(action)
            done = step.terminated or step.truncated
            actor.observe(action, step)
            env_steps += 1
            stats.record(step.reward, done, env_steps)
            if done:
                episodes += 1
                observation = env.reset()
                actor.observe_first(observation)
            else:
                observation = step.observation
            learn_until_due()
            actor.update()
            if env_steps % log_every == 0 or learner.updates >= total_updates:
                now, cpu = time.perf_counter(), time.process_time()
                row = {
                    "updates": learner.updates,
                    "episodes": episodes,
                    "replay_size": buffer.size(),
                    "updates_per_second": (learner.updates - window_updates) / max(now - window_start, 1e-9),
                    "env_steps_per_second": (env_steps - window_steps) / max(now - window_start, 1e-9),
                    # CPU seconds of all the process's threads (XLA's, Reverb's) per second: how much of the machine
                    # the layout takes; CPU per environment step is cpu_cores / env_steps_per_second
                    "cpu_cores": (cpu - window_cpu) / max(now - window_start, 1e-9),
                }
                recent = stats.mean_since(env_steps - log_every)
                if recent is not None:
                    row["episode_return"] = recent
                check_finite(metrics, learner.updates, last_saved[0], checkpointer.directory)
                row.update(mean_metrics(metrics))
                writer.write(env_steps, row)
                window_start, window_cpu, window_updates, window_steps = now, cpu, learner.updates, env_steps
                metrics = []
            if stop.requested is not None:
                save(learner.updates)
                raise TrainingStopped(stop.requested, learner.updates, checkpointer.directory)
        else:
            if checkpoint_every:
                save(learner.updates)
        if on_finish is not None:
            on_finish(learner, stats)
        if client is not None:
            buffer.flush()  # the items still queued count as inserted
            inserts, samples = replay.limiter_counts(client, table_names)
            replay_counts = {"replay_inserts": float(inserts), "replay_samples": float(samples)}
    finally:
        stop.restore_handlers()
        checkpointer.close()
        writer.close()
        if server is not None:
            buffer.close()  # its threads first: they write to and sample from the server
            server.stop()
    final_steps, learning_starts = builder.total_env_steps(), builder.learning_starts()
    first_final_step = final_steps - experiment.run.final_fraction * (final_steps - learning_starts)
    final = {
        "env_steps": float(env_steps),
        "updates": float(learner.updates),
        "replay_ratio": learner.updates / max(env_steps - learning_starts, 1),
    }
    final.update(replay_counts)
    final["final_return"] = stats.final_score(int(first_final_step))
    return final


def acting_snapshot(env: Environment, observation: np.ndarray, actor, buffer) -> np.ndarray | None:
    """The acting side of a run, pickled into bytes [n] uint8 for the checkpoint, so a resumed run continues the
    episode in progress with the same random streams: the environment (its state and generator), the observation,
    the actor's exploration stream and the replay's state (items, the n-step window, its sampling stream).
    None when the actor or the replay cannot give theirs (a Reverb table samples from an unseeded stream, so a
    resumed run could not replay the same batches anyway); such a run restarts its episode on resume."""
    if not (hasattr(actor, "random_state") and hasattr(buffer, "state")):
        return None
    state = {"env": env, "observation": observation, "actor": actor.random_state(), "replay": buffer.state()}
    return np.frombuffer(pickle.dumps(state), np.uint8)


def unpickle_acting(snapshot: np.ndarray) -> dict:
    """`acting_snapshot`'s bytes [n] uint8 back into its dict (env, observation, actor, replay)."""
    return pickle.loads(np.asarray(snapshot, np.uint8).tobytes())  # noqa: S301 (the run's own checkpoint)


def restore_acting(state: dict, actor, buffer) -> tuple[Environment, np.ndarray]:
    """Puts the actor and replay state of an unpickled `acting_snapshot` back; returns its (environment,
    observation)."""
    actor.restore_random_state(state["actor"])
    buffer.restore_state(state["replay"])
    return state["env"], state["observation"]


def check_finite(metrics: list[dict], updates: int, last_saved: int | None, directory: str) -> None:
    """Raises NonFiniteLossError when a learner metric of the window (loss, gradient norm...) is NaN/Inf."""
    bad = sorted({name for step in metrics for name, value in step.items() if not np.isfinite(float(value))})
    if bad:
        raise NonFiniteLossError(
            f"learner {', '.join(bad)} became NaN/Inf before update {updates}; stopped without saving. The last good "
            f"checkpoint is update {last_saved or 0} in {directory}. Lower the learning rate, then rerun to resume."
        )


def mean_metrics(metrics: list[dict]) -> dict[str, float]:
    """The mean of each learner metric over a window of steps (one host sync per metric, at logging time)."""
    if not metrics:
        return {}
    return {name: float(np.mean([float(step[name]) for step in metrics])) for name in metrics[0]}
