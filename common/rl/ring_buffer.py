"""A plain in-process ring buffer with the same methods as `replay.ReverbReplay`: the baseline that shows what
Reverb costs (benchmarks/replay.py). Uniform sampling only; same n-step items (`replay.NStepWindow`)."""

import numpy as np

from common.rl import replay


def transition_arrays(size: int, observation_shape, scalar_fields) -> dict[str, np.ndarray]:
    """Preallocated storage for `size` transitions: observation and next_observation [size, *observation_shape]
    float32, action [size] int32, and each of `scalar_fields` [size] float32."""
    arrays = {
        "observation": np.zeros((size, *observation_shape), np.float32),
        "next_observation": np.zeros((size, *observation_shape), np.float32),
        "action": np.zeros(size, np.int32),
    }
    return arrays | {name: np.zeros(size, np.float32) for name in scalar_fields}


class RingBufferReplay:
    """`capacity` n-step transitions in preallocated numpy arrays; the oldest is overwritten first."""

    def __init__(
        self, capacity: int, observation_shape, *, batch_size: int, n_step: int, discount: float, seed: int = 0
    ):
        self.capacity, self.batch_size = capacity, batch_size
        self._window = replay.NStepWindow(n_step, discount)
        self._arrays = transition_arrays(capacity, observation_shape, ("n_step_return", "bootstrap_discount"))
        self._inserted = 0
        self._observation = None
        self._rng = np.random.default_rng(seed)

    def add_first(self, observation: np.ndarray) -> None:
        self._window.reset()
        self._observation = np.asarray(observation)

    def add(self, action: int, reward: float, next_observation: np.ndarray, terminated: bool, truncated: bool):
        start = (self._observation, action)
        self._observation = np.asarray(next_observation)
        for (observation, start_action), n_step_return, bootstrap in self._window.add(
            start, reward, terminated, truncated
        ):
            slot = self._inserted % self.capacity
            self._arrays["observation"][slot] = observation
            self._arrays["action"][slot] = start_action
            self._arrays["n_step_return"][slot] = n_step_return
            self._arrays["bootstrap_discount"][slot] = bootstrap
            self._arrays["next_observation"][slot] = self._observation
            self._inserted += 1

    def size(self) -> int:
        return min(self._inserted, self.capacity)

    def flush(self) -> None:
        """Nothing is buffered: every item is in the arrays as soon as it is complete."""

    def sample(self) -> replay.Batch:
        if self.size() == 0:
            raise ValueError("sample from an empty ring buffer")
        slots = self._rng.integers(0, self.size(), size=self.batch_size)
        data = {name: array[slots] for name, array in self._arrays.items()}
        probabilities = np.full(self.batch_size, 1.0 / self.size())
        return replay.Batch(
            data=data, keys=slots.astype(np.uint64), probabilities=probabilities, table_size=self.size()
        )

    def state(self) -> dict:
        """Everything a resumed run needs to continue exactly: the items, the write position, the n-step window of
        the episode in progress and the sampling stream (pickled by the runner with its checkpoint)."""
        return {
            "arrays": self._arrays,
            "inserted": self._inserted,
            "observation": self._observation,
            "window": self._window.state(),
            "rng": self._rng.bit_generator.state,
        }

    def restore_state(self, state: dict) -> None:
        shapes = {name: array.shape for name, array in self._arrays.items()}
        saved = {name: array.shape for name, array in state["arrays"].items()}
        if saved != shapes:
            raise ValueError(f"saved ring buffer arrays {saved} do not fit this buffer's {shapes}")
        self._arrays, self._inserted, self._observation = state["arrays"], state["inserted"], state["observation"]
        self._window.restore_state(state["window"])
        self._rng.bit_generator.state = state["rng"]

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        raise ValueError("the ring buffer samples uniformly; use replay.backend='reverb' for prioritised replay")
