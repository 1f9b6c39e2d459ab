"""Names and calls whose form differs between the pinned stack (JAX 0.4.34, Flax 0.10.4) and newer releases.

The stack is pinned by dm-reverb 0.14 (docs/architecture.md); accelerator machines may carry newer JAX/Flax.
Whatever changed between them is wrapped here, so an upgrade touches this one file.
"""

import inspect

import optax
from flax import nnx

from common.errors import UserError

# Flax 0.12 made every nnx.Module a JAX pytree: an attribute whose plain list, dict or tuple holds submodules,
# Variables or arrays is refused unless it says so. Modules here are written that way (`self.blocks = List([...])`,
# `self.tables = data({...})`); Flax 0.10 has neither name and walks plain containers as part of the graph, so
# there they are the plain container. The state's key paths (`blocks/0/kernel`, `tables/row`) are the same on both.
if hasattr(nnx, "List"):
    List = nnx.List
    data = nnx.data
else:
    List = list

    def data(value):
        """Flax 0.10: the value itself (a container attribute is already part of the graph)."""
        return value


# Flax 0.11 changed Optimizer: `wrt` became required and `update(grads)` became `update(model, grads)`.
_UPDATE_TAKES_MODEL = "model" in inspect.signature(nnx.Optimizer.update).parameters


def new_optimizer(model: nnx.Module, tx: optax.GradientTransformation) -> nnx.Optimizer:
    """An optimizer over `model`'s nnx.Param variables."""
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def apply_gradients(optimizer: nnx.Optimizer, model: nnx.Module, grads) -> None:
    """One optimizer step on `model` in place."""
    if _UPDATE_TAKES_MODEL:
        optimizer.update(model, grads)
    else:
        optimizer.update(grads)


# dm-reverb 0.14 links TensorFlow 2.15, so it exists on the pinned stack only (requirements/constraints.txt); the
# current stack (requirements/current.txt) has everything else. Code that needs it says so as a one-line UserError.
REVERB_NEEDED = "the replay paper needs dm-reverb, which needs Python <= 3.11 and the pinned stack: make setup"
REVERB_BACKEND_NEEDED = (
    "replay.backend='reverb' needs dm-reverb, which needs Python <= 3.11 and the pinned stack: make setup "
    "(replay.backend='ring' runs without it)"
)


class MissingReverb:
    """Stands in for the `reverb` module where it is not installed: importing works, using it raises `UserError`."""

    def __init__(self, message: str):
        self._message = message

    def __getattr__(self, name: str):
        if name.startswith("__"):  # introspection (copy, pickle, pytest) sees an ordinary object
            raise AttributeError(name)
        raise UserError(self._message)


def has_reverb() -> bool:
    """Whether dm-reverb imports here (the pinned stack)."""
    return not isinstance(import_reverb(), MissingReverb)


def import_reverb():
    """The `reverb` module, or a `MissingReverb` that raises on first use. Modules that use Reverb only on some
    paths (the ring backend needs none) import it through here, with `from __future__ import annotations`."""
    try:
        import reverb
    except ImportError:
        return MissingReverb(REVERB_BACKEND_NEEDED)
    return reverb


def require_reverb(message: str = REVERB_NEEDED) -> None:
    """Raises `UserError(message)` where dm-reverb is not installed."""
    if not has_reverb():
        raise UserError(message)
