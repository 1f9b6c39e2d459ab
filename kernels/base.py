"""What every kernel package starts from: its launch config and the checks its public function runs on its inputs.

A package's `api.py` validates the inputs once, with the `check_*` helpers here, and then hands them to the
reference (XLA) or the Pallas path unchecked; the errors name the argument, its shape and what was expected.
Only jax and numpy are imported, so the packages run on a machine without the rest of the project.
"""

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

NUM_WARPS = (1, 2, 4, 8, 16)
# The smallest edge of a dot operand a lowering accepts: Triton's tensor-core dots need 16, TPU sublanes 8; the
# interpreter takes any size. Keyed by `kernels.backend.accelerator()`, None for the interpreter.
MIN_TILE = {"gpu": 16, "tpu": 8, None: 1}


def is_power_of_two(n) -> bool:
    return isinstance(n, int | np.integer) and n >= 1 and not n & (n - 1)


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Launch knobs shared by every kernel; a kernel that needs block sizes extends it with its own fields.

    num_warps, num_stages: Triton's (GPU only). min_tile: the smallest tile edge a kernel pads its dot operands
    to (a power of two; `MIN_TILE` per platform). A subclass adds fields and calls `super().__post_init__()`.
    """

    num_warps: int = 4
    num_stages: int = 1
    min_tile: int = 16

    def __post_init__(self):
        check_choice("num_warps", self.num_warps, NUM_WARPS)
        check_integer("num_stages", self.num_stages, minimum=1)
        if not is_power_of_two(self.min_tile):
            raise ValueError(f"min_tile must be a power of two, got {self.min_tile!r}")

    @classmethod
    def for_platform(cls, platform: str | None) -> "KernelConfig":
        """The defaults of `platform` ('gpu', 'tpu', or None when interpreting); other fields keep their defaults."""
        check_choice("platform", platform, tuple(MIN_TILE))
        return cls(min_tile=MIN_TILE[platform])


def check_choice(kind: str, value, choices: Sequence) -> None:
    """Raises "unknown <kind> <value>; valid choices: ..." unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(str(c) for c in choices)}")


def check_integer(name: str, value, *, minimum: int) -> None:
    """Raises unless value is a Python or numpy integer >= minimum (not a bool, not a float)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum:
        return
    wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    raise ValueError(f"{name} must be {wanted}, got {value!r}")


def check_rank(name: str, array, axes: Sequence[str]) -> None:
    """Raises unless array has one axis per name in axes; the message lists them: "x must be [batch, channels]"."""
    if array is None or array.ndim != len(axes):
        got = None if array is None else tuple(array.shape)
        raise ValueError(f"{name} must be [{', '.join(axes)}], got shape {got}")


def check_shape(name: str, array, expected: Sequence[int], why: str = "") -> None:
    """Raises "<name> must have shape <expected><why>, got <shape>" (why: where expected comes from)."""
    if array is None or tuple(array.shape) != tuple(expected):
        got = None if array is None else tuple(array.shape)
        raise ValueError(f"{name} must have shape {tuple(expected)}{why}, got {got}")


def check_dtype(name: str, array, expected, why: str = "") -> None:
    """Raises "<name> must have dtype <expected><why>, got <dtype>"."""
    if jnp.dtype(array.dtype) != jnp.dtype(expected):
        raise ValueError(f"{name} must have dtype {jnp.dtype(expected)}{why}, got {array.dtype}")


def check_floating(name: str, array) -> None:
    """Raises unless array holds floating-point numbers (the kernels compute in its dtype)."""
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise ValueError(f"{name} must hold floating-point numbers, got {array.dtype}")


def check_nonempty(name: str, array, axis: str = "batch") -> None:
    """Raises unless array's first axis (`axis`) has at least one entry: no kernel launches on an empty grid."""
    if array.shape[0] == 0:
        raise ValueError(f"{name} has an empty {axis} axis (shape {tuple(array.shape)}); pass at least one example")


def check_slots(name: str, slots, num_slots: int) -> None:
    """Raises when concrete (not traced) slot indices fall outside [0, num_slots): a gather would clamp them."""
    try:
        values = np.asarray(slots)
    except Exception:  # noqa: BLE001 (a tracer inside jit: checked where the slots are made)
        return
    if values.size and (values.min() < 0 or values.max() >= num_slots):
        raise ValueError(f"{name} must lie in [0, {num_slots}) (the cache's slots), got {values.min()}..{values.max()}")


def check_integer_dtype(name: str, array) -> None:
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integers, got {array.dtype}")
