"""Sweep definitions (common/sweep runs them in-process or on Ray: docs/sweeps.md), and what more than one of them
needs."""

from collections.abc import Callable


def replay_ratio_at_least(minimum: float) -> Callable[[dict], bool]:
    """A `Sweep.where` for the replay grids: keeps the cells whose replay ratio (age of the oldest policy over the
    capacity) is at least `minimum`, as the replay study skips its lowest-ratio cells."""
    return lambda point: point["replay.oldest_policy_age"] / point["replay.capacity"] >= minimum
