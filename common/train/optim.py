"""Optimisers and learning-rate schedules, selected by name from a config.

Config fields read (all under `config.optimizer`):
  name            one of OPTIMIZERS
  learning_rate   peak learning rate
  schedule        one of SCHEDULES
  warmup_steps    linear warm-up from 0 to the peak (any schedule)
  momentum        for momentum / nesterov (default 0.9)
  weight_decay    L2 on weights with ndim > 1 (sgd family) or decoupled decay (adamw); 0 turns it off
  decay_boundaries / decay_factor   for the "steps" schedule: fractions of training where lr *= factor
  decay_rate      for the "exponential" schedule: lr *= decay_rate every step
"""

from collections.abc import Callable

import jax
import optax
from ml_collections import ConfigDict

from common.registry import lookup


def _decay_mask(params):
    """Decays kernels only: biases, BatchNorm scales and per-channel activation parameters are left alone."""
    return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


def _sgd_family(momentum: float | None, nesterov: bool):
    def make(cfg: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
        parts = []
        if cfg.get("weight_decay", 0.0):
            parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask))
        parts.append(
            optax.sgd(lr, momentum=cfg.get("momentum", 0.9) if momentum is None else momentum, nesterov=nesterov)
        )
        return optax.chain(*parts)

    return make


def _adam(cfg: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
    tx = optax.adam(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8))
    if cfg.get("weight_decay", 0.0):
        tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask), tx)
    return tx


def _adamw(cfg: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
    return optax.adamw(
        lr,
        b1=cfg.get("b1", 0.9),
        b2=cfg.get("b2", 0.999),
        eps=cfg.get("eps", 1e-8),
        weight_decay=cfg.get("weight_decay", 1e-4),
        mask=_decay_mask,
    )


OPTIMIZERS: dict[str, Callable[[ConfigDict, optax.Schedule], optax.GradientTransformation]] = {
    "sgd": _sgd_family(momentum=0.0, nesterov=False),
    "momentum": _sgd_family(momentum=None, nesterov=False),
    "nesterov": _sgd_family(momentum=None, nesterov=True),
    "adam": _adam,
    "adamw": _adamw,
}


def _constant(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    return optax.constant_schedule(cfg.learning_rate)


def _cosine(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    decay_steps = max(total_steps - cfg.get("warmup_steps", 0), 1)
    return optax.cosine_decay_schedule(cfg.learning_rate, decay_steps, alpha=cfg.get("final_lr_fraction", 0.0))


def _steps(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    boundaries = cfg.get("decay_boundaries", (0.5, 0.75))
    factor = cfg.get("decay_factor", 0.1)
    warmup = cfg.get("warmup_steps", 0)
    return optax.piecewise_constant_schedule(
        cfg.learning_rate, {max(int(b * total_steps) - warmup, 1): factor for b in boundaries}
    )


def _exponential(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    """lr * decay_rate ** step (PixelCNN++'s 0.999995 per step)."""
    del total_steps
    return optax.exponential_decay(cfg.learning_rate, transition_steps=1, decay_rate=cfg.get("decay_rate", 0.999995))


SCHEDULES: dict[str, Callable[[ConfigDict, int], optax.Schedule]] = {
    "constant": _constant,
    "cosine": _cosine,
    "exponential": _exponential,
    "steps": _steps,
}


def make_schedule(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warm-up to `cfg.learning_rate`, then the named decay over the remaining steps."""
    decay = lookup(SCHEDULES, cfg.get("schedule", "constant"), "schedule")(cfg, total_steps)
    warmup = cfg.get("warmup_steps", 0)
    if not warmup:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, warmup), decay], [warmup])


def make_optimizer(cfg: ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """The optax transformation named by `cfg.name`, driven by `make_schedule`."""
    factory = lookup(OPTIMIZERS, cfg.name, "optimizer")
    return factory(cfg, make_schedule(cfg, total_steps))
