"""Calls whose form differs between the pinned stack (JAX 0.4.34, Flax 0.10.4) and newer releases.

The stack is pinned by dm-reverb 0.14 (docs/architecture.md); accelerator machines may carry newer JAX/Flax.
Whatever changed between them is wrapped here, so an upgrade touches this one file.
"""

import inspect

import optax
from flax import nnx

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
