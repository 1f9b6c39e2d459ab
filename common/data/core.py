"""What every input pipeline shares (images, audio, and any other): sources, seeds, the resumable training stream,
padded eval batches, and the split of the data between the processes of a multi-host job.

Resumable by construction. The training stream is a sequence of epochs; epoch e is this process's examples
shuffled with a seed derived from (seed, e), cut to steps_per_epoch whole batches, and transformed (augmented,
windowed, ...) with stateless random ops seeded by (seed, e, the example's position in the epoch). Batch s therefore
depends only on s, so `train_batches(start_step=s)` starts at epoch s // steps_per_epoch, skips the batches before
s within it, and yields exactly what `train_batches(start_step=0)` yields from batch s on, without replaying the
history.

Multi-host. Process p of P reads only its own part of each split (`ProcessShard.split`: tfds even splits, disjoint,
sizes differing by at most one example) and yields batches of global_batch_size // P examples; the training step
assembles the P local batches into one global array (common/train/sharding.py). With one process nothing is split,
so the stream is the same whether or not a job could have had more hosts.
"""

import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
from collections.abc import Callable, Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from common.errors import UserError

Batch = dict[str, np.ndarray]
# (an element of a tf.data dataset, int64 [2] seed for stateless random ops) -> a dict of tensors
Transform = Callable[..., dict[str, tf.Tensor]]

_SHUFFLE_STREAM = 0
_EXAMPLE_STREAM = 1
_NO_END = 2**62  # epochs: the training stream is infinite in practice


class DatasetNotAvailableError(UserError, FileNotFoundError):
    """The data a dataset needs is not on this machine; the message says how to get it."""


@functools.cache
def hide_accelerators_from_tensorflow() -> None:
    """TensorFlow only feeds data: keep it from claiming GPU memory that JAX needs. Safe to call repeatedly."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices; visibility can no longer change
        logging.warning("TensorFlow was initialised before its GPUs could be hidden; it may hold GPU memory")


# ---------------------------------------------------------------------------------------------------------------
# Processes.


@dataclasses.dataclass(frozen=True)
class ProcessShard:
    """Which part of the data one JAX process reads: shard `index` of `count` (one per process)."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise ValueError(f"process shard index must be in [0, {self.count}), got {self.index}")

    @classmethod
    def of_this_process(cls) -> "ProcessShard":
        return cls(jax.process_index(), jax.process_count())

    def split(self, split: str) -> tfds.typing.SplitArg:
        """This shard's part of tfds split `split` (slices allowed, "train[:90%]"); the whole split for one process."""
        return split if self.count == 1 else tfds.even_splits(split, n=self.count)[self.index]

    def all_splits(self, split: str) -> list[tfds.typing.SplitArg]:
        """Every shard's part of `split`, in shard order."""
        return [split] if self.count == 1 else tfds.even_splits(split, n=self.count)

    def local_batch_size(self, global_batch_size: int, what: str = "batch_size") -> int:
        """Examples per batch in this process; fails, naming the value, unless the processes share it evenly."""
        if global_batch_size % self.count:
            raise ValueError(
                f"{what}={global_batch_size} is not divisible by the {self.count} processes of this job; "
                f"choose a multiple of {self.count}"
            )
        return global_batch_size // self.count


def max_over_processes(value: int) -> int:
    """The largest of every process's `value` (a collective: every process must call it at the same point)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int64))))


# ---------------------------------------------------------------------------------------------------------------
# Sources.


def not_prepared_error(
    name: str, tfds_name: str, builder: tfds.core.DatasetBuilder, offline: list[str], note: str = ""
) -> DatasetNotAvailableError:
    """The error for a standard tfds dataset that is not prepared locally: how to get it, and the offline choices."""
    return DatasetNotAvailableError(
        f"tfds dataset {name!r} is not prepared in data_dir {builder.data_dir_root}, and Reprise never "
        f"downloads at run time. To get it, run `tfds build {tfds_name}` on a machine with internet "
        f"{note}and copy the prepared folder into that data_dir, or pass --config.dataset.data_dir=DIR where it "
        f"already is. Or use an offline dataset: {', '.join(offline)}."
    )


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Holds an advisory lock on file `path` (created if needed), so concurrent processes prepare a dataset once."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def prepare_offline(
    make_builder: Callable[[], tfds.core.DatasetBuilder], check_available: Callable[[], None] | None = None
) -> tfds.core.DatasetBuilder:
    """The builder of an offline dataset (local files only), prepared on first use: once, even when several
    processes (the hosts of one job on a shared disk, parallel tests) ask at the same time.

    check_available: raises DatasetNotAvailableError when the local source is missing; called before preparing.
    """
    builder = make_builder()
    if builder.is_prepared():
        return builder
    if check_available is not None:
        check_available()
    with exclusive_lock(f"{builder.data_path}.lock"):
        builder = make_builder()  # another process may have prepared it meanwhile
        if not builder.is_prepared():
            # Offline builders read local files only; also skip tfds's lookup of a prepared copy on GCS.
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder


def read_split(
    builder: tfds.core.DatasetBuilder, split: str, decode: Callable, *, cache: bool = True
) -> tf.data.Dataset:
    """The examples of `split` in one fixed order, each mapped by `decode` (tfds feature dict -> element).

    cache: keep the decoded examples in memory after their first pass (turn off for data larger than memory).
    """
    read_config = tfds.ReadConfig(interleave_cycle_length=1, try_autocache=False)  # fixed file order
    examples = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
    examples = examples.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return examples.cache() if cache else examples


# ---------------------------------------------------------------------------------------------------------------
# Seeds. Everything random in the training stream is a pure function of (seed, epoch, position).


def epoch_shuffle_seed(seed: int, epoch: tf.Tensor, shard: ProcessShard = ProcessShard()) -> tf.Tensor:
    """An int64 scalar for Dataset.shuffle, distinct for every (seed, epoch) and, with several processes, shard.

    (Shards of equal size shuffled alike would put example k of every shard in the same global batch, every epoch.)
    """
    key = tf.random.experimental.stateless_fold_in(tf.constant([seed, _SHUFFLE_STREAM], tf.int64), epoch)
    if shard.count > 1:
        key = tf.random.experimental.stateless_fold_in(key, shard.index)
    return tf.random.stateless_uniform([], seed=key, minval=None, maxval=None, dtype=tf.int64)


def example_seed(seed: int, epoch: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
    """int64 [2] seed for the stateless random ops (augmentation, crops, windows) of example `position` of epoch
    `epoch`; position counts over the epoch's global batches, so no two processes share a seed."""
    key = tf.random.experimental.stateless_fold_in(tf.constant([seed, _EXAMPLE_STREAM], tf.int64), epoch)
    return tf.random.experimental.stateless_fold_in(key, position)


# ---------------------------------------------------------------------------------------------------------------
# Batches.


def check_seed(seed: int) -> None:
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")


def train_batches(
    examples: tf.data.Dataset,
    transform: Transform,
    *,
    seed: int,
    global_batch_size: int,
    steps_per_epoch: int,
    start_step: int = 0,
    shuffle_buffer: int,
    shard: ProcessShard = ProcessShard(),
) -> tf.data.Dataset:
    """This process's endless stream of training batches from batch `start_step` on (see the module docstring).

    examples: this process's examples (read from `shard.split(...)`) in a fixed order, at least
      steps_per_epoch * local batch size of them.
    transform: (element, int64 [2] seed) -> dict of tensors, with stateless random ops seeded by that seed.
    Yields dicts of [global_batch_size // shard.count, ...] tensors.
    """
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    batch_size = shard.local_batch_size(global_batch_size)
    start_epoch, step_in_epoch = divmod(int(start_step), steps_per_epoch)
    examples_to_skip = step_in_epoch * batch_size

    def global_position(local_position: tf.Tensor) -> tf.Tensor:
        """Position in the epoch of the assembled global batches: local batch b is rows [i L, (i+1) L) of global
        batch b for process i; with one process, the local position itself."""
        batch, row = local_position // batch_size, local_position % batch_size
        return batch * global_batch_size + shard.index * batch_size + row

    def epoch_examples(epoch: tf.Tensor) -> tf.data.Dataset:
        shuffled = examples.shuffle(
            shuffle_buffer, seed=epoch_shuffle_seed(seed, epoch, shard), reshuffle_each_iteration=False
        )
        positioned = shuffled.take(steps_per_epoch * batch_size).enumerate()
        skip = tf.where(epoch == start_epoch, tf.constant(examples_to_skip, tf.int64), tf.constant(0, tf.int64))
        return positioned.skip(skip).map(lambda position, example: (epoch, global_position(position), example))

    def transform_example(epoch, position, example):
        return transform(example, example_seed(seed, epoch, position))

    stream = tf.data.Dataset.range(start_epoch, _NO_END).flat_map(epoch_examples)
    stream = stream.map(transform_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Every epoch contributes a whole number of batches, so batch s is always step s of the stream.
    return stream.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_batches(elements: tf.data.Dataset, batch_size: int, num_batches: int | None = None) -> tf.data.Dataset:
    """One pass over `elements` (dicts of tensors) in batches of exactly `batch_size` rows.

    The short last batch is filled with all-zero rows, then all-zero batches follow up to `num_batches` (None: no
    more than the data fills), so every process of a job yields as many batches. Elements carry their own "mask"
    (1.0 where data is real), which the zero rows set to 0.
    """
    if "mask" not in elements.element_spec:
        raise ValueError(f"eval elements need a 'mask' entry, got keys {sorted(elements.element_spec)}")

    def fill(batch):
        missing = batch_size - tf.shape(batch["mask"])[0]
        return {key: tf.pad(value, [[0, missing]] + [[0, 0]] * (value.shape.rank - 1)) for key, value in batch.items()}

    batches = elements.batch(batch_size).map(fill)
    if num_batches is not None:
        zeros = {key: _zeros(batch_size, spec, key) for key, spec in elements.element_spec.items()}
        batches = batches.concatenate(tf.data.Dataset.from_tensors(zeros).repeat()).take(num_batches)
    return batches.prefetch(tf.data.AUTOTUNE)


def _zeros(batch_size: int, spec: tf.TensorSpec, key: str) -> tf.Tensor:
    if not spec.shape.is_fully_defined():
        raise ValueError(f"eval element {key!r} has shape {spec.shape}: padding whole batches needs static shapes")
    return tf.zeros([batch_size, *spec.shape], spec.dtype)


def num_eval_batches(shard_sizes: list[int], batch_size: int) -> int:
    """Batches of `batch_size` that hold the largest shard: what every process yields."""
    return -(-max(shard_sizes) // batch_size)


def count_batches(batches: tf.data.Dataset) -> int:
    """The number of batches in one pass (reads it all)."""
    return int(batches.reduce(np.int64(0), lambda count, _: count + 1))
