"""Experience replay on a Reverb server: the table, the n-step writer, the learner's batches, priorities, checkpoints.

One replay item is one n-step transition, whatever writes it:
  observation       [*obs_shape]  the observation the action was taken in
  action            []   int32
  n_step_return     []   float32  sum_{k<m} discount^k r_{t+k+1}, m = n, or fewer steps at an episode's end
  bootstrap_discount []  float32  discount^m, or 0 when the episode terminated inside the window
  next_observation  [*obs_shape]  the observation m steps later (the one bootstrapped from)
so a learner needs no knowledge of n: the target is `n_step_return + bootstrap_discount * max_a Q(next_observation)`.

The table holds `capacity` items and evicts the oldest first (FIFO), and samples uniformly or in proportion to
priority**exponent. Its SampleToInsertRatio limiter keeps the replay ratio (gradient updates per environment step):
Reverb counts sampled *items*, so samples_per_insert = replay_ratio * batch_size (0.25 x 32 = 8). When one thread
both acts and learns, that limiter deadlocks (an insert waits for a sample the same thread would make next), so
`single_process=True` keeps the ratio in the table's description but widens its error bounds until it never blocks;
the single-process runner then keeps the ratio itself, by schedule.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
from collections.abc import Iterator

import numpy as np

from common.compat import import_reverb
from common.registry import lookup

reverb = import_reverb()

ITEM_FIELDS = ("action", "bootstrap_discount", "n_step_return", "next_observation", "observation")  # Reverb's order
_UNBOUNDED_ERROR = 1e15  # "never blocks" for the single-process limiter (a float the C++ limiter accepts)

SAMPLERS = {
    "uniform": lambda exponent: reverb.selectors.Uniform(),
    "prioritized": lambda exponent: reverb.selectors.Prioritized(exponent),
}


def samples_per_insert(replay_ratio: float, batch_size: int) -> float:
    """Items sampled per item inserted for `replay_ratio` gradient updates per environment step."""
    if replay_ratio <= 0 or batch_size <= 0:
        raise ValueError(f"replay_ratio ({replay_ratio}) and batch_size ({batch_size}) must be positive")
    return replay_ratio * batch_size


def make_rate_limiter(
    replay_ratio: float, batch_size: int, min_size_to_sample: int, *, single_process: bool, error_batches: float = 4.0
) -> reverb.rate_limiters.RateLimiter:
    """SampleToInsertRatio at the replay ratio; it lets sampling run `error_batches` batches ahead or behind.

    single_process: the bounds are widened until the limiter never blocks (see the module docstring).
    """
    spi = samples_per_insert(replay_ratio, batch_size)
    if single_process:
        bounds = (-_UNBOUNDED_ERROR, _UNBOUNDED_ERROR)
    else:
        offset, slack = spi * min_size_to_sample, max(error_batches * batch_size, 2 * spi)
        bounds = (offset - slack, offset + slack)
    return reverb.rate_limiters.SampleToInsertRatio(spi, min_size_to_sample, bounds)


def make_table(config, *, single_process: bool, name: str = "replay") -> reverb.Table:
    """The replay table from `config`, a ConfigDict or `common.rl.config.ReplayConfig` (fields: capacity, sampler,
    priority_exponent, replay_ratio, batch_size, min_size_to_sample, error_batches)."""
    if config.capacity < config.min_size_to_sample:
        raise ValueError(f"capacity ({config.capacity}) < min_size_to_sample ({config.min_size_to_sample})")
    sampler = lookup(SAMPLERS, config.sampler, "replay sampler")(float(getattr(config, "priority_exponent", 1.0)))
    limiter = make_rate_limiter(
        config.replay_ratio,
        config.batch_size,
        config.min_size_to_sample,
        single_process=single_process,
        error_batches=getattr(config, "error_batches", 4.0),
    )
    return reverb.Table(
        name=name, sampler=sampler, remover=reverb.selectors.Fifo(), max_size=int(config.capacity), rate_limiter=limiter
    )


class NStepWindow:
    """The n-step bookkeeping shared by every writer: which transitions are complete after each step, with their
    n-step return and bootstrap discount.

    `start` is whatever the writer needs to find the transition's observation and action again (Reverb references,
    or the arrays themselves).
    """

    def __init__(self, n: int, discount: float):
        if n < 1:
            raise ValueError(f"n_step must be >= 1, got {n}")
        self.n, self.discount = n, discount
        self._starts: collections.deque = collections.deque()
        self._rewards: collections.deque = collections.deque()

    def reset(self) -> None:
        self._starts.clear()
        self._rewards.clear()

    def add(self, start, reward: float, terminated: bool, truncated: bool) -> list[tuple[object, float, float]]:
        """Records the step taken from `start` and its reward; returns the completed (start, return, discount)."""
        self._starts.append(start)
        self._rewards.append(float(reward))
        if terminated or truncated:
            count = len(self._starts)
        else:
            count = 1 if len(self._starts) == self.n else 0
        completed = []
        for _ in range(count):
            rewards = np.asarray(self._rewards, np.float64)
            n_step_return = float(np.sum(rewards * self.discount ** np.arange(len(rewards))))
            bootstrap = 0.0 if terminated else self.discount ** len(rewards)
            completed.append((self._starts.popleft(), n_step_return, bootstrap))
            self._rewards.popleft()
        return completed


class NStepWriter:
    """Writes n-step transitions into a Reverb table through one `TrajectoryWriter`.

    Every observation and action is sent once; an item references the start's observation and action, the
    bootstrap observation, and two scalars appended for it. Use: `add_first(obs)` at an episode's start, then
    `add(action, reward, next_obs, terminated, truncated)` per step (a new `add_first` after the episode ends).
    """

    def __init__(
        self,
        client: reverb.Client,
        table: str,
        *,
        n_step: int,
        discount: float,
        priority: float = 1.0,
        max_in_flight_items: int = 16,
    ):
        self.table, self.priority = table, priority
        self._window = NStepWindow(n_step, discount)
        self._max_in_flight = max_in_flight_items
        # The oldest reference an item needs is the start's observation, 2 appends per step ago, up to n steps back;
        # an episode's end appends up to n more return steps.
        self._writer = client.trajectory_writer(num_keep_alive_refs=2 * n_step + 2)
        self._observation_ref = None

    def add_first(self, observation: np.ndarray) -> None:
        self._window.reset()
        self._writer.append({"observation": np.asarray(observation)})
        self._observation_ref = self._writer.history["observation"][-1]

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool):
        if self._observation_ref is None:
            raise RuntimeError("NStepWriter.add called before add_first")
        self._writer.append({"action": np.asarray(action, np.int32), "observation": np.asarray(next_observation)})
        history = self._writer.history
        start = (self._observation_ref, history["action"][-1])
        self._observation_ref = history["observation"][-1]
        for (observation_ref, action_ref), n_step_return, bootstrap in self._window.add(
            start, reward, terminated, truncated
        ):
            self._writer.append(
                {"n_step_return": np.float32(n_step_return), "bootstrap_discount": np.float32(bootstrap)}
            )
            history = self._writer.history  # a snapshot: re-read after each append
            item = {
                "observation": observation_ref,
                "action": action_ref,
                "n_step_return": history["n_step_return"][-1],
                "bootstrap_discount": history["bootstrap_discount"][-1],
                "next_observation": self._observation_ref,
            }
            self._writer.create_item(self.table, self.priority, item)
            self._writer.flush(block_until_num_items=self._max_in_flight)
        if terminated or truncated:
            self._writer.end_episode(clear_buffers=True)
            self._observation_ref = None

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


@dataclasses.dataclass
class Batch:
    """A sampled batch: `data[field]` is [batch, ...] per ITEM_FIELDS; keys [batch] uint64 name the items for
    priority updates; probabilities [batch] are the sampling probabilities (for importance weights)."""

    data: dict[str, np.ndarray]
    keys: np.ndarray
    probabilities: np.ndarray
    table_size: int


def sample_stream(client: reverb.Client, table: str) -> Iterator[reverb.ReplaySample]:
    """Items from one long-lived sampler (one sampler per batch would cost a connection set-up each time). It keeps
    at most one item in flight ahead of the consumer."""
    return client.sample(table, num_samples=2**62, emit_timesteps=False)


def stack_batch(samples: list) -> Batch:
    """A Batch from sampled items."""
    columns = zip(*(sample.data for sample in samples), strict=True)
    data = {field: np.stack(column) for field, column in zip(ITEM_FIELDS, columns, strict=True)}
    return Batch(
        data=data,
        keys=np.array([sample.info.key for sample in samples], np.uint64),
        probabilities=np.array([sample.info.probability for sample in samples], np.float64),
        table_size=int(samples[-1].info.table_size),
    )


def sample_batch(client: reverb.Client, table: str, batch_size: int) -> Batch:
    """One batch of `batch_size` items from a sampler of its own; blocks while the rate limiter says no."""
    return stack_batch(list(client.sample(table, num_samples=batch_size, emit_timesteps=False)))


def batches(client: reverb.Client, table: str, batch_size: int) -> Iterator[Batch]:
    """The learner's endless stream of numpy batches, from one sampler."""
    stream = sample_stream(client, table)
    while True:
        yield stack_batch([next(stream) for _ in range(batch_size)])


def update_priorities(client: reverb.Client, table: str, keys: np.ndarray, priorities: np.ndarray) -> None:
    """Sets the priority of each item in `keys` [batch] to `priorities` [batch] (items evicted since are skipped)."""
    keys, priorities = np.asarray(keys), np.asarray(priorities, np.float64)
    if keys.shape != priorities.shape:
        raise ValueError(f"keys {keys.shape} and priorities {priorities.shape} must have the same shape")
    client.mutate_priorities(table, updates=dict(zip(keys.tolist(), priorities.tolist(), strict=True)))


def table_size(client: reverb.Client, table: str) -> int:
    return int(client.server_info()[table].current_size)


def limiter_counts(client: reverb.Client, tables: list[str]) -> tuple[int, int]:
    """(items inserted, items sampled) over `tables` since the server started, as their rate limiters count them."""
    infos = [client.server_info()[table].rate_limiter_info for table in tables]
    return sum(info.insert_stats.completed for info in infos), sum(info.sample_stats.completed for info in infos)


class TableDataset:
    """A learner's side of one table: batches from one long-lived sampler, and priority updates."""

    def __init__(self, client: reverb.Client, table: str, batch_size: int):
        self.client, self.table = client, table
        self._batches = batches(client, table, batch_size)

    def sample(self) -> Batch:
        """The next batch; blocks while the rate limiter says no."""
        return next(self._batches)

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        update_priorities(self.client, self.table, keys, priorities)


class ReverbReplay:
    """What a single-process runner needs from replay: the n-step writer, batches and priority updates on one
    table, behind the same methods as `common.rl.ring_buffer.RingBufferReplay`.

    New items enter at the largest priority seen so far (Dopamine's rule), so each is replayed soon.
    """

    def __init__(
        self,
        client: reverb.Client,
        table: str,
        *,
        batch_size: int,
        n_step: int,
        discount: float,
        min_size_to_sample: int,
    ):
        self.client, self.table, self.batch_size = client, table, batch_size
        self.writer = NStepWriter(client, table, n_step=n_step, discount=discount)
        self._min_size, self._dataset = min_size_to_sample, None

    def add_first(self, observation: np.ndarray) -> None:
        self.writer.add_first(observation)

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool):
        self.writer.add(action, reward, next_observation, terminated, truncated)

    def sample(self) -> Batch:
        # Until the table reaches its minimum size a sample waits for inserts, which in one thread only a flush of
        # the items still in the writer can bring; after that the relaxed limiter never blocks.
        if self._dataset is None:
            self.writer.flush()
            if table_size(self.client, self.table) < self._min_size:
                raise RuntimeError(f"sampling before the table holds min_size_to_sample={self._min_size} items")
            self._dataset = TableDataset(self.client, self.table, self.batch_size)
        return self._dataset.sample()

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        update_priorities(self.client, self.table, keys, priorities)
        self.writer.priority = max(self.writer.priority, float(np.max(priorities)))

    def flush(self) -> None:
        self.writer.flush()

    def size(self) -> int:
        return table_size(self.client, self.table)


class ReplayCheckpoints:
    """Reverb checkpoints kept per training step under `<workdir>/replay/step_<N>`.

    Reverb writes a checkpoint into its server's directory and keeps only the newest there; `save` moves each one
    out to the step of the agent checkpoint it belongs to (save the replay first, then the agent: a crash between
    the two leaves an extra replay step, never a missing one). `checkpointer_for(step)` points a new server at
    exactly that step's contents and drops the steps after it.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(os.path.join(workdir, "replay"))
        self.max_to_keep = max_to_keep
        self._server_directory = os.path.join(self.directory, "server")  # where Reverb itself writes

    def steps(self) -> list[int]:
        if not os.path.isdir(self.directory):
            return []
        return sorted(int(name[5:]) for name in os.listdir(self.directory) if name.startswith("step_"))

    def _path(self, step: int) -> str:
        return os.path.join(self.directory, f"step_{step}")

    def save(self, client: reverb.Client, step: int) -> str:
        """Checkpoints every table of the server behind `client` as `step` (the server must have been built with
        `checkpointer_for`)."""
        written = client.checkpoint()
        if os.path.dirname(os.path.abspath(written)) != self._server_directory:
            raise ValueError(f"the server checkpoints to {written}, not under {self._server_directory}")
        shutil.rmtree(self._path(step), ignore_errors=True)
        os.replace(written, self._path(step))
        for old in self.steps()[: -self.max_to_keep]:
            shutil.rmtree(self._path(old))
        return self._path(step)

    def checkpointer_for(self, step: int | None) -> reverb.checkpointers.DefaultCheckpointer:
        """A checkpointer that loads the contents saved at `step` (None: an empty table)."""
        if step is not None and step not in self.steps():
            raise FileNotFoundError(f"no replay checkpoint for step {step} in {self.directory} (have {self.steps()})")
        for later in self.steps():
            if step is None or later > step:
                shutil.rmtree(self._path(later))
        shutil.rmtree(self._server_directory, ignore_errors=True)
        os.makedirs(self._server_directory)
        fallback = None if step is None else self._path(step)
        return reverb.checkpointers.DefaultCheckpointer(self._server_directory, fallback_checkpoint_path=fallback)
