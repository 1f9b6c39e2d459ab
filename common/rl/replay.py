"""Experience replay on a Reverb server: the table, the n-step writer, the learner's batches, priorities, checkpoints.

One replay item is one n-step transition, whatever writes it; a learner reads it as ITEM_FIELDS:
  observation       [*obs_shape]  the observation the action was taken in
  action            []   int32
  n_step_return     []   float32  sum_{k<m} discount^k r_{t+k+1}, m = n, or fewer steps at an episode's end
  bootstrap_discount []  float32  discount^m, or 0 when the episode terminated inside the window
  next_observation  [*obs_shape]  the observation m steps later (the one bootstrapped from)
so a learner needs no knowledge of n: the target is `n_step_return + bootstrap_discount * max_a Q(next_observation)`.
The table stores it in STORED_COLUMNS, the fewest columns that keep dtypes: observations [2, *obs_shape] (the two
observations stacked, in the environment's dtype) and scalars [3] float32 (action, n_step_return,
bootstrap_discount; actions are small integers, exact in float32), and, when items carry their own insert priority,
WRITE_PRIORITY []. Every column costs Reverb a chunk per item on insert and a tensor per item on sample, so two
columns cost less CPU than five, most clearly when sampling (`python -m benchmarks.replay --profile` measures each).
An item holds both its observations (twice the observation bytes of items that reference shared steps; Reverb
compresses the chunks).

The table holds `capacity` items and evicts the oldest first (FIFO), and samples uniformly or in proportion to
priority**exponent. Its SampleToInsertRatio limiter keeps the replay ratio (gradient updates per environment step):
Reverb counts sampled *items*, so samples_per_insert = replay_ratio * batch_size (0.25 x 32 = 8). When one thread
both acts and learns, that limiter deadlocks (an insert waits for a sample the same thread would make next), so
`single_process=True` keeps the ratio in the table's description but widens its error bounds until it never blocks;
the single-process runner then keeps the ratio itself, by schedule.

Neither the acting nor the learning thread waits on a Reverb round trip: `NStepWriter` appends to a StructuredWriter,
whose own worker streams the items to the server (the caller pays a copy per item and no hand-off between Python
threads), `PrefetchingDataset` keeps items requested ahead in Reverb's sampler, and a single-process table's
priority updates run on a `CallThread`. The ratio is counted where batches are read: in one process by the
runner's schedule (one batch per update), distributed by the limiter, whose count of items drawn runs ahead of the
batches read by at most `PrefetchingDataset.items_sampled_ahead(batch_size)`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import shutil
import threading

import numpy as np

from common.compat import import_reverb
from common.registry import lookup

reverb = import_reverb()

ITEM_FIELDS = ("action", "bootstrap_discount", "n_step_return", "next_observation", "observation")
STORED_COLUMNS = ("observations", "scalars")  # what the table holds per item (module docstring)
WRITE_PRIORITY = "write_priority"  # the optional third column: the priority the item was inserted at
PENDING_ITEMS_WARNING = 50  # dm-reverb 0.14 logs warnings while a writer has this many items unconfirmed
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

    def state(self) -> tuple[list, list]:
        """The steps still waiting for their n-step return: (starts, rewards)."""
        return list(self._starts), list(self._rewards)

    def restore_state(self, state: tuple[list, list]) -> None:
        starts, rewards = state
        self._starts, self._rewards = collections.deque(starts), collections.deque(rewards)

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
    """Writes n-step transitions into a Reverb table: one self-contained item per transition (see the module
    docstring for its columns).

    Use: `add_first(obs)` at an episode's start, then `add(action, reward, next_obs, terminated, truncated)` per step
    (a new `add_first` after the episode ends). Completed transitions are appended `items_per_batch` at a time to a
    StructuredWriter, whose C++ worker streams them to the server while the caller goes on; after each batch the
    caller waits only while more than `max_in_flight_items` are unconfirmed (the table's rate limiter holding
    inserts back, distributed). Items reach the table up to `items_per_batch` steps late, and a few milliseconds
    after; `flush` returns once they are in. The two together stay below PENDING_ITEMS_WARNING, where Reverb starts
    warning of a forgotten flush.

    priority: what new items enter at. carry_priority: each item carries its priority in a WRITE_PRIORITY column, so
    `priority` may change between items (a single-process prioritised table); otherwise every item enters at the
    `priority` given here.
    """

    def __init__(
        self,
        client: reverb.Client,
        table: str,
        *,
        n_step: int,
        discount: float,
        priority: float = 1.0,
        carry_priority: bool = False,
        items_per_batch: int = 8,
        max_in_flight_items: int = 40,
    ):
        if items_per_batch < 1 or items_per_batch + max_in_flight_items >= PENDING_ITEMS_WARNING:
            raise ValueError(
                f"items_per_batch ({items_per_batch}) must be >= 1 and items_per_batch + max_in_flight_items "
                f"({items_per_batch + max_in_flight_items}) below {PENDING_ITEMS_WARNING}, where Reverb warns of "
                "too many pending items"
            )
        self.table, self.priority = table, priority
        self._window = NStepWindow(n_step, discount)
        self._writer = client.structured_writer([transition_writer_config(table, None if carry_priority else priority)])
        self._carry_priority, self._max_in_flight = carry_priority, max_in_flight_items
        self._items_per_batch, self._unsent = items_per_batch, []
        self._observation = None

    def add_first(self, observation: np.ndarray) -> None:
        self._window.reset()
        self._observation = np.asarray(observation)

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool):
        if self._observation is None:
            raise RuntimeError("NStepWriter.add called before add_first")
        start = (self._observation, action)
        self._observation = np.asarray(next_observation)
        for (observation, start_action), n_step_return, bootstrap in self._window.add(
            start, reward, terminated, truncated
        ):
            columns = [
                np.stack([observation, self._observation]),
                np.array([start_action, n_step_return, bootstrap], np.float32),
            ]
            if self._carry_priority:
                columns.append(np.float32(self.priority))
            self._unsent.append(columns)
        if len(self._unsent) >= self._items_per_batch:
            self._send()
        if terminated or truncated:
            self._observation = None

    def _send(self) -> None:
        if self._unsent:
            for columns in self._unsent:
                self._writer.append(columns)
            self._unsent = []
            self._writer.flush(block_until_num_items=self._max_in_flight)

    def flush(self) -> None:
        """Returns once every item added so far is in the table."""
        self._send()
        self._writer.flush()

    def close(self) -> None:
        self.flush()


class InitialPriorityWriter(NStepWriter):
    """The n-step writer whose items each carry their own initial priority (the WRITE_PRIORITY column), given by
    `priorities` (ITEM_FIELDS [items, ...] -> [items]) to the items of one batch at a time (items_per_batch of them:
    one call per 8 environment steps, fewer at an episode's end): a distributed actor scoring its own items (Ape-X)."""

    def __init__(self, client: reverb.Client, table: str, *, n_step: int, discount: float, priorities):
        super().__init__(client, table, n_step=n_step, discount=discount, carry_priority=True)
        self._priorities = priorities

    def _send(self) -> None:
        if self._unsent:
            stored = len(STORED_COLUMNS)
            observations, scalars = (np.stack([item[i] for item in self._unsent]) for i in range(stored))
            priorities = self._priorities(unpack_batch(observations, scalars))
            for item, priority in zip(self._unsent, priorities, strict=True):
                item[stored] = np.float32(priority)  # the WRITE_PRIORITY column
        super()._send()


def transition_writer_config(table: str, priority: float | None):
    """A StructuredWriter config: each appended step (STORED_COLUMNS, plus WRITE_PRIORITY when `priority` is None)
    becomes one item of `table`, at `priority` or at the value of its WRITE_PRIORITY column."""
    columns = STORED_COLUMNS if priority is not None else (*STORED_COLUMNS, WRITE_PRIORITY)
    step = reverb.structured_writer.create_reference_step(list(columns))
    if priority is None:
        priority_fn = reverb.structured_writer.td_error(1.0, list(columns), lambda s: s[len(STORED_COLUMNS)])
    else:
        priority_fn = reverb.structured_writer.constant_priority_fn(priority)
    return reverb.structured_writer.create_config([column[-1] for column in step], table, priority=priority_fn)


class CallThread:
    """A thread that calls the functions `put` on its queue, in order, so that their caller does not wait for a
    Reverb round trip (priority updates). The queue holds at most `queued` of them (a producer that runs ahead
    blocks); an error on the thread is raised again in the producer at its next `put` or `join`."""

    def __init__(self, name: str, queued: int = 64):
        self._queue: queue.Queue = queue.Queue(maxsize=queued)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            function = self._queue.get()
            try:
                if function is None:
                    return
                if self._error is None:
                    function()
            except BaseException as error:  # noqa: BLE001 (handed to the producer)
                self._error = error
            finally:
                self._queue.task_done()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"a call on thread {self._thread.name} failed: {self._error}") from self._error

    def put(self, function) -> None:
        self._raise_error()
        if not self._thread.is_alive():
            raise RuntimeError(f"put on the closed thread {self._thread.name}")
        self._queue.put(function)

    def join(self) -> None:
        """Waits until every function put so far has run."""
        self._queue.join()
        self._raise_error()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_error()


@dataclasses.dataclass
class Batch:
    """A sampled batch: `data[field]` is [batch, ...] per ITEM_FIELDS; keys [batch] uint64 name the items for
    priority updates; probabilities [batch] are the sampling probabilities (for importance weights)."""

    data: dict[str, np.ndarray]
    keys: np.ndarray
    probabilities: np.ndarray
    table_size: int


def unpack_batch(observations: np.ndarray, scalars: np.ndarray) -> dict[str, np.ndarray]:
    """ITEM_FIELDS [batch, ...] from stored columns: observations [batch, 2, *obs_shape] (the observation, then the
    one bootstrapped from), scalars [batch, 3] float32 (action, n_step_return, bootstrap_discount)."""
    return {
        "action": scalars[:, 0].astype(np.int32),
        "bootstrap_discount": scalars[:, 2],
        "n_step_return": scalars[:, 1],
        "next_observation": observations[:, 1],
        "observation": observations[:, 0],
    }


def unpack_item(observations: np.ndarray, scalars: np.ndarray) -> dict[str, np.ndarray]:
    """One item's ITEM_FIELDS from its stored columns (observations [2, *obs_shape], scalars [3])."""
    return {field: value[0] for field, value in unpack_batch(observations[None], scalars[None]).items()}


def item_fields(sample: reverb.ReplaySample) -> dict[str, np.ndarray]:
    """One sampled item's ITEM_FIELDS."""
    return unpack_item(*sample.data[: len(STORED_COLUMNS)])


def stack_batch(samples: list) -> Batch:
    """A Batch from sampled items (`reverb.ReplaySample`s)."""
    columns = list(zip(*(sample.data[: len(STORED_COLUMNS)] for sample in samples), strict=True))
    return Batch(
        data=unpack_batch(*(np.stack(column) for column in columns)),
        keys=np.array([sample.info.key for sample in samples], np.uint64),
        probabilities=np.array([sample.info.probability for sample in samples], np.float64),
        table_size=int(samples[-1].info.table_size),
    )


def sample_batch(client: reverb.Client, table: str, batch_size: int) -> Batch:
    """One batch of `batch_size` items from a sampler of its own; blocks while the rate limiter says no."""
    return stack_batch(list(client.sample(table, num_samples=batch_size, emit_timesteps=False)))


def open_sampler(client: reverb.Client, table: str, max_in_flight_items: int):
    """An endless Reverb sampler that keeps `max_in_flight_items` items requested ahead of its reader.

    `Client.sample` fixes that number at 1, which costs a hand-off between threads per item (several times the CPU
    of 64 in flight: `python -m benchmarks.replay --profile`); Reverb's pybind sampler takes it as its third
    argument (dm-reverb 0.14; the one private call of this module). `next_item(sampler)` reads one item.
    """
    return client._client.NewSampler(table, 2**62, max_in_flight_items)  # noqa: SLF001 (see the docstring)


def next_item(sampler) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(info, data) of the sampler's next item: info = key, probability, table_size, priority, times_sampled."""
    flat = sampler.GetNextTrajectory()
    return flat[:_NUM_INFO], flat[_NUM_INFO:]


_NUM_INFO = 5  # reverb.pybind.Sampler.NUM_INFO_TENSORS in dm-reverb 0.14


class PrefetchingDataset:
    """A learner's side of one table: batches of `batch_size` items and their priority updates.

    Reverb's sampler keeps IN_FLIGHT_BATCHES batches' worth of items requested ahead (its C++ workers fetch them
    while the learner computes), and `sample` stacks the next batch in the caller's thread: a Python thread of ours
    stacking batches ahead cost the learner more, in hand-offs and in the GIL it held, than it hid.

    So a batch was drawn from the table as it was up to `items_sampled_ahead` items earlier (at replay ratio 0.25 and
    batch 32: 2 batches, 8 environment steps), and its priorities too. The replay ratio is unchanged: in one process
    the runner's schedule counts the batches read; distributed, the limiter counts the items drawn, which run ahead
    of the batches read by at most that bound.
    """

    IN_FLIGHT_BATCHES = 2

    def __init__(self, client: reverb.Client, table: str, batch_size: int):
        self.client, self.table, self.batch_size = client, table, batch_size
        self._sampler = open_sampler(client, table, self.IN_FLIGHT_BATCHES * batch_size)

    @classmethod
    def items_sampled_ahead(cls, batch_size: int) -> int:
        """The most items the table may have handed out beyond the batches read: the sampler's in-flight items."""
        return cls.IN_FLIGHT_BATCHES * batch_size

    def sample(self) -> Batch:
        """The next batch; blocks while the rate limiter says no."""
        if self._sampler is None:
            raise RuntimeError(f"sampling from the closed dataset of Reverb table {self.table!r}")
        try:
            infos, columns = zip(*(next_item(self._sampler) for _ in range(self.batch_size)), strict=True)
        except Exception as error:
            raise RuntimeError(f"sampling from Reverb table {self.table!r} failed: {error}") from error
        observations, scalars = (np.stack([item[i] for item in columns]) for i in range(len(STORED_COLUMNS)))
        return Batch(
            data=unpack_batch(observations, scalars),
            keys=np.array([info[0] for info in infos], np.uint64),
            probabilities=np.array([info[1] for info in infos], np.float64),
            table_size=int(infos[-1][2]),
        )

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        update_priorities(self.client, self.table, keys, priorities)

    def close(self) -> None:
        """Drops the sampler and the items it holds in flight."""
        self._sampler = None


def priority_updates(keys: np.ndarray, priorities: np.ndarray) -> dict[int, float]:
    """{key: priority} from `keys` [batch] and `priorities` [batch], checked to match."""
    keys, priorities = np.asarray(keys), np.asarray(priorities, np.float64)
    if keys.shape != priorities.shape:
        raise ValueError(f"keys {keys.shape} and priorities {priorities.shape} must have the same shape")
    return dict(zip(keys.tolist(), priorities.tolist(), strict=True))


def update_priorities(client: reverb.Client, table: str, keys: np.ndarray, priorities: np.ndarray) -> None:
    """Sets the priority of each item in `keys` [batch] to `priorities` [batch] (items evicted since are skipped)."""
    updates = priority_updates(keys, priorities)  # checked before the client is touched
    client.mutate_priorities(table, updates=updates)


def table_size(client: reverb.Client, table: str) -> int:
    return int(client.server_info()[table].current_size)


def limiter_counts(client: reverb.Client, tables: list[str]) -> tuple[int, int]:
    """(items inserted, items sampled) over `tables` since the server started, as their rate limiters count them."""
    infos = [client.server_info()[table].rate_limiter_info for table in tables]
    return sum(info.insert_stats.completed for info in infos), sum(info.sample_stats.completed for info in infos)


class ReverbReplay:
    """What a single-process runner needs from replay: the n-step writer, batches and priority updates on one
    table, behind the same methods as `common.rl.ring_buffer.RingBufferReplay`.

    Inserts are appends to the writer's StructuredWriter, batches come from a sampler that keeps items requested
    ahead (`PrefetchingDataset`), and priority updates go out on a `CallThread`, so the acting-and-learning thread
    never waits for a Reverb round trip. New items enter at the largest priority seen so far (Dopamine's rule), so
    each is replayed soon.
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
        prioritized: bool = False,
    ):
        self.client, self.table, self.batch_size = client, table, batch_size
        self.writer = NStepWriter(client, table, n_step=n_step, discount=discount, carry_priority=prioritized)
        self._min_size, self._dataset = min_size_to_sample, None
        self._priority_calls = CallThread(f"reverb-priorities-{table}") if prioritized else None

    def add_first(self, observation: np.ndarray) -> None:
        self.writer.add_first(observation)

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool):
        self.writer.add(action, reward, next_observation, terminated, truncated)

    def sample(self) -> Batch:
        # Until the table reaches its minimum size a sample waits for inserts, which in one thread only a flush of
        # the items still queued can bring; after that the relaxed limiter never blocks.
        if self._dataset is None:
            self.writer.flush()
            if table_size(self.client, self.table) < self._min_size:
                raise RuntimeError(f"sampling before the table holds min_size_to_sample={self._min_size} items")
            self._dataset = PrefetchingDataset(self.client, self.table, self.batch_size)
        return self._dataset.sample()

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        if self._priority_calls is None:
            raise ValueError(f"priority updates on the uniform table {self.table!r} (make it with prioritized=True)")
        updates = priority_updates(keys, priorities)
        self._priority_calls.put(lambda: self.client.mutate_priorities(self.table, updates=updates))
        self.writer.priority = max(self.writer.priority, max(updates.values()))

    def flush(self) -> None:
        """Returns once every item added and every priority update made so far is in the table."""
        self.writer.flush()
        if self._priority_calls is not None:
            self._priority_calls.join()

    def size(self) -> int:
        return table_size(self.client, self.table)

    def close(self) -> None:
        """Stops the sampler and the priority thread and sends what is left (before the server stops)."""
        if self._dataset is not None:
            self._dataset.close()
        if self._priority_calls is not None:
            self._priority_calls.close()
        self.writer.close()


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
