"""The single-process DQN-family runner: one thread acts and learns in turn, on a Reverb table (or a ring buffer).

Learning runs on a schedule instead of behind the rate limiter (which would deadlock one thread, see
common/rl/replay.py): after `learning_starts` environment steps, the runner performs gradient updates until
updates == floor(replay_ratio * (env_steps - learning_starts)), so the replay ratio holds to within one update.
A run is `run.total_updates` gradient updates long, as in the paper: environment steps follow from the ratio.

Checkpoints (every `run.checkpoint_every` updates, at the end, and on SIGTERM/SIGINT) hold the learner's state and
the counters (Orbax) and the replay table (Reverb's checkpointer, `replay.ReplayCheckpoints`); rerunning the same
command restores both and continues. An episode cut by a restart starts afresh.

Config: seed; env (name, max_episode_steps, sticky_action_prob); agent (common/rl/dqn: network, hidden,
distributional, num_atoms, v_max, discount, n_step, optimizer, target_update_period, huber_delta,
importance_exponent, epsilon_start/final/decay_updates); replay (backend, capacity, sampler, priority_exponent,
replay_ratio, batch_size, min_size_to_sample); run (total_updates, log_every, checkpoint_every, final_fraction).
The score, `final_return`, is the mean return of the episodes that ended in the last run.final_fraction of the
environment steps after the warm-up.
"""

import math
import time

import jax.numpy as jnp
import numpy as np
import reverb
from ml_collections import ConfigDict

from common.registry import lookup
from common.rl import replay
from common.rl.dqn.actor import Actor, epsilon_at
from common.rl.dqn.learner import Learner
from common.rl.environments import Environment, make_environment
from common.rl.ring_buffer import RingBufferReplay
from common.train.checkpoint import Checkpointer, StopRequest
from common.train.metrics import MetricWriter


def make_env(config: ConfigDict, seed: int) -> Environment:
    options = {key: config.env.get(key) for key in ("max_episode_steps", "sticky_action_prob")}
    return make_environment(config.env.name, seed=seed, **{k: v for k, v in options.items() if v is not None})


def learning_starts(config: ConfigDict) -> int:
    """Environment steps before the first update: enough for `min_size_to_sample` complete n-step items."""
    return int(config.replay.min_size_to_sample) + int(config.agent.n_step)


def total_env_steps(config: ConfigDict) -> int:
    return learning_starts(config) + math.ceil(config.run.total_updates / config.replay.replay_ratio)


def updates_due(config: ConfigDict, env_steps: int) -> int:
    return min(
        max(0, math.floor(config.replay.replay_ratio * (env_steps - learning_starts(config)))),
        int(config.run.total_updates),
    )


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

    def final_score(self, env_steps: int) -> float:
        """The mean return of the episodes that ended after `env_steps`; if none did (one long episode spans the
        whole window), the return so far of the unfinished episode, a lower bound of its return."""
        recent = self.mean_since(env_steps)
        return recent if recent is not None else self.current


def _build_reverb(config: ConfigDict, workdir: str, start_step: int | None):
    checkpoints = replay.ReplayCheckpoints(workdir)
    table = replay.make_table(config.replay, single_process=True)
    server = reverb.Server([table], checkpointer=checkpoints.checkpointer_for(start_step))
    client = server.localhost_client()
    buffer = replay.ReverbReplay(
        client,
        table.name,
        batch_size=int(config.replay.batch_size),
        n_step=int(config.agent.n_step),
        discount=float(config.agent.discount),
        min_size_to_sample=int(config.replay.min_size_to_sample),
    )
    return buffer, checkpoints, server


def _build_ring(config: ConfigDict, observation_shape, seed: int):
    if config.replay.sampler != "uniform":
        raise ValueError(
            f"replay.backend='ring' samples uniformly; replay.sampler={config.replay.sampler!r} needs reverb"
        )
    buffer = RingBufferReplay(
        int(config.replay.capacity),
        observation_shape,
        batch_size=int(config.replay.batch_size),
        n_step=int(config.agent.n_step),
        discount=float(config.agent.discount),
        seed=seed,
    )
    return buffer, None, None


BACKENDS = ("reverb", "ring")


def _replay_counts(buffer) -> dict[str, float]:
    """Items inserted into and sampled from the Reverb table since the server started (the limiter's counts)."""
    if not isinstance(buffer, replay.ReverbReplay):
        return {}
    info = buffer.client.server_info()[buffer.table].rate_limiter_info
    return {"replay_inserts": float(info.insert_stats.completed), "replay_samples": float(info.sample_stats.completed)}


def train_single_process(config: ConfigDict, workdir: str, *, log=print) -> dict[str, float]:
    """Trains for config.run.total_updates gradient updates in `workdir` (resuming from its checkpoints)."""
    lookup({name: name for name in BACKENDS}, config.replay.backend, "replay backend")
    env = make_env(config, config.seed)
    learner = Learner(
        config.agent,
        env.observation_shape,
        env.num_actions,
        seed=config.seed,
        total_updates=int(config.run.total_updates),
    )
    actor = Actor(config.agent, learner.graphdef, env.num_actions, seed=config.seed + 1)
    checkpoint_every = int(config.run.checkpoint_every)
    if config.replay.backend == "ring" and checkpoint_every:
        raise ValueError("replay.backend='ring' cannot checkpoint its contents; set run.checkpoint_every=0")
    checkpointer = Checkpointer(workdir, save_every=max(checkpoint_every, 1), async_save=False)
    counters = {"env_steps": jnp.zeros((), jnp.int32), "episodes": jnp.zeros((), jnp.int32)}
    start_step = checkpointer.latest_step()
    if start_step is not None:
        restored = checkpointer.restore({"learner": learner.state, "counters": counters}, start_step)
        learner.state, counters = restored["learner"], restored["counters"]
    if config.replay.backend == "reverb":
        buffer, replay_checkpoints, server = _build_reverb(config, workdir, start_step)
    else:
        buffer, replay_checkpoints, server = _build_ring(config, env.observation_shape, config.seed)
    env_steps, episodes = int(counters["env_steps"]), int(counters["episodes"])
    if start_step is not None:
        log(f"resumed at {start_step} updates, {env_steps} environment steps, {buffer.size()} items in replay")

    last_saved = [start_step]

    def save(updates: int) -> None:
        if updates == last_saved[0]:
            return
        last_saved[0] = updates
        if replay_checkpoints is not None:
            buffer.writer.flush()  # items still in the writer belong to this checkpoint too
            replay_checkpoints.save(buffer.client, updates)  # the replay first: see ReplayCheckpoints
        counters = {"env_steps": jnp.asarray(env_steps, jnp.int32), "episodes": jnp.asarray(episodes, jnp.int32)}
        checkpointer.maybe_save(updates, {"learner": learner.state, "counters": counters}, force=True)

    writer = MetricWriter(workdir, resume_step=env_steps)
    stats = EpisodeStats()
    prioritized = config.replay.sampler == "prioritized"
    final_steps, log_every = total_env_steps(config), int(config.run.log_every)
    stop = StopRequest()
    observation = env.reset()
    buffer.add_first(observation)
    window_start, window_updates, window_steps, losses = time.perf_counter(), learner.updates, env_steps, []
    try:
        while learner.updates < config.run.total_updates:
            action = actor.select_action(learner.online_params, observation, learner.updates)
            step = env.step(action)
            done = step.terminated or step.truncated
            buffer.add(action, step.reward, step.observation, step.terminated, step.truncated)
            env_steps += 1
            stats.record(step.reward, done, env_steps)
            if done:
                episodes += 1
                observation = env.reset()
                buffer.add_first(observation)
            else:
                observation = step.observation
            while learner.updates < updates_due(config, env_steps):
                batch = buffer.sample()
                priorities, metrics = learner.update(batch)
                losses.append(metrics["loss"])
                if prioritized:
                    buffer.update_priorities(batch.keys, priorities)
                    # New items enter at the largest priority seen so far (Dopamine's rule), so each is replayed soon.
                    buffer.writer.priority = max(buffer.writer.priority, float(priorities.max()))
                if checkpoint_every and learner.updates % checkpoint_every == 0:
                    save(learner.updates)
            if env_steps % log_every == 0 or learner.updates >= config.run.total_updates:
                now = time.perf_counter()
                row = {
                    "updates": learner.updates,
                    "episodes": episodes,
                    "epsilon": epsilon_at(learner.updates, config.agent),
                    "replay_size": buffer.size(),
                    "updates_per_second": (learner.updates - window_updates) / max(now - window_start, 1e-9),
                    "env_steps_per_second": (env_steps - window_steps) / max(now - window_start, 1e-9),
                }
                recent = stats.mean_since(env_steps - log_every)
                if recent is not None:
                    row["episode_return"] = recent
                if losses:
                    row["loss"] = float(np.mean([float(loss) for loss in losses]))
                writer.write(env_steps, row)
                window_start, window_updates, window_steps, losses = now, learner.updates, env_steps, []
            if stop.requested is not None:
                save(learner.updates)
                log(f"{stop.requested} received: saved at {learner.updates} updates; rerun to resume")
                break
        else:
            if checkpoint_every:
                save(learner.updates)
        replay_counts = _replay_counts(buffer)
    finally:
        stop.restore_handlers()
        checkpointer.close()
        writer.close()
        if server is not None:
            server.stop()
    first_final_step = final_steps - config.run.final_fraction * (final_steps - learning_starts(config))
    final = {
        "env_steps": float(env_steps),
        "updates": float(learner.updates),
        "replay_ratio": learner.updates / max(env_steps - learning_starts(config), 1),
    }
    final.update(replay_counts)
    final["final_return"] = stats.final_score(int(first_final_step))
    return final
