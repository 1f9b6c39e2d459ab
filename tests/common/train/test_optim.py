"""Optimisers and schedules by name."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from common.registry import UnknownNameError
from common.train import optim


def config(**overrides) -> ConfigDict:
    base = {
        "name": "nesterov",
        "learning_rate": 0.4,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "schedule": "cosine",
        "warmup_steps": 10,
    }
    base.update(overrides)
    return ConfigDict(base)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_optimizer_takes_a_step_downhill(name):
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    tx = optim.make_optimizer(config(name=name, learning_rate=0.1, warmup_steps=0, weight_decay=1e-4), 100)
    state = tx.init(params)
    loss = lambda p: (p["w"] ** 2).sum() + (p["b"] ** 2).sum()  # noqa: E731
    for _ in range(3):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < 3 * 2 + 2


def test_warmup_then_cosine():
    schedule = optim.make_schedule(config(), total_steps=110)
    np.testing.assert_allclose([schedule(0), schedule(5), schedule(10)], [0.0, 0.2, 0.4], rtol=1e-6)
    np.testing.assert_allclose(schedule(60), 0.2, rtol=1e-5)
    np.testing.assert_allclose(schedule(110), 0.0, atol=1e-7)


def test_step_schedule_decays_at_fractions():
    schedule = optim.make_schedule(
        config(schedule="steps", warmup_steps=0, decay_boundaries=(0.5, 0.75), decay_factor=0.1), total_steps=100
    )
    np.testing.assert_allclose([schedule(49), schedule(51), schedule(76)], [0.4, 0.04, 0.004], rtol=1e-5)


def test_weight_decay_skips_biases():
    tx = optim.make_optimizer(
        config(name="sgd", learning_rate=1.0, warmup_steps=0, weight_decay=0.5, schedule="constant"), 10
    )
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    zero = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.5)
    np.testing.assert_allclose(updates["b"], 0.0)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("name", "adagrad", "unknown optimizer 'adagrad'; valid choices: adam, adamw, momentum, nesterov, sgd"),
        ("schedule", "linear", "unknown schedule 'linear'; valid choices: constant, cosine, exponential, steps"),
    ],
)
def test_unknown_names_list_the_choices(field, bad, message):
    with pytest.raises(UnknownNameError) as error:
        optim.make_optimizer(config(**{field: bad}), 100)
    assert str(error.value) == message
