"""Data parallelism over every device of every process: the batch is split along a `data` mesh axis, the state
replicated.

With global arrays XLA inserts the cross-device reductions itself (BatchNorm statistics and the mean loss are
taken over the whole global batch), so 1 device and N devices compute the same step up to float rounding.

Multi-host: each process's pipeline yields its own rows of the global batch (common/data/core.py), and
`shard_batch` assembles them into one global array without any process holding the others' rows. The mesh lists
the devices process by process, so process p's rows are block p of the global batch.
"""

import collections
from collections.abc import Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes), ordered by process, then device id."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(sorted(devices, key=lambda device: (device.process_index, device.id))), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_divisible(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
    """Fails early, naming the value, when a batch cannot be split evenly over the mesh."""
    per_process = mesh.devices.size // jax.process_count()
    if batch_size % per_process:
        raise ValueError(f"{what}={batch_size} is not divisible by the {per_process} local devices of the data mesh")


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Turns this process's part of the batch (leading axis [B_local]) into global arrays [B_local * process_count]
    sharded over `data`; every process calls it with its own part at the same step."""
    sharding = batch_sharded(mesh)
    check_batch_divisible(len(next(iter(batch.values()))), mesh, "batch size")
    return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def prefetch_to_mesh(iterator: Iterator[dict], mesh: Mesh, size: int = 2) -> Iterator[dict]:
    """Keeps `size` batches already on their devices, so host-to-device copies overlap with the step."""
    queue = collections.deque()
    for batch in iterator:
        queue.append(shard_batch(batch, mesh))
        if len(queue) > size - 1:
            yield queue.popleft()
    while queue:
        yield queue.popleft()
