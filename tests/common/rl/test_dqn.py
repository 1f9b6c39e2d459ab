"""The DQN family's pieces: losses against hand-computed oracles, the learner's target updates, the actor's
epsilon schedule, and the config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.registry import UnknownNameError
from common.rl import replay
from common.rl.dqn import losses, networks
from common.rl.dqn.actor import EpsilonGreedyPolicy, epsilon_at
from common.rl.dqn.learner import Learner, atoms_of
from tests.common.rl.cartpole import dqn_smoke


def agent_config(**overrides):
    config = dqn_smoke().agent
    config.update(overrides)
    return config


def make_learner(config, total_updates: int) -> Learner:
    return Learner(config, networks.make_network(config, (4,), 2, nnx.Rngs(0)), total_updates=total_updates)


def random_batch(rng, batch=6, observation_shape=(4,), num_actions=2):
    return replay.Batch(
        data={
            "observation": rng.normal(size=(batch, *observation_shape)).astype(np.float32),
            "next_observation": rng.normal(size=(batch, *observation_shape)).astype(np.float32),
            "action": rng.integers(0, num_actions, size=batch).astype(np.int32),
            "n_step_return": rng.normal(size=batch).astype(np.float32),
            "bootstrap_discount": rng.choice([0.0, 0.9], size=batch).astype(np.float32),
        },
        keys=np.arange(batch, dtype=np.uint64),
        probabilities=rng.uniform(0.01, 0.2, size=batch),
        table_size=100,
    )


def test_dqn_loss_matches_the_td_error_by_hand():
    rng = np.random.default_rng(0)
    q_tm1, q_t = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    actions = np.array([0, 2, 1, 1, 0], np.int32)
    returns, discounts = rng.normal(size=5).astype(np.float32), np.array([0.9, 0.0, 0.81, 0.9, 0.5], np.float32)
    weights = np.array([1.0, 0.5, 1.0, 0.2, 1.0], np.float32)
    td = returns + discounts * q_t.max(axis=1) - q_tm1[np.arange(5), actions]
    huber = np.where(np.abs(td) <= 1.0, 0.5 * td**2, np.abs(td) - 0.5)
    loss, priorities = losses.dqn_loss(q_tm1, actions, returns, discounts, q_t, weights, 1.0)
    np.testing.assert_allclose(loss, np.mean(weights * huber), rtol=1e-5)
    np.testing.assert_allclose(priorities, np.abs(td), rtol=1e-5)


def test_c51_loss_with_a_zero_discount_targets_the_reward_atom():
    atoms = jnp.linspace(-2.0, 2.0, 5)  # reward 1.0 lands on atom 3 exactly
    rng = np.random.default_rng(1)
    logits_tm1 = rng.normal(size=(4, 2, 5)).astype(np.float32)
    logits_t = rng.normal(size=(4, 2, 5)).astype(np.float32)
    actions = np.array([0, 1, 1, 0], np.int32)
    loss, per_item = losses.c51_loss(
        logits_tm1, actions, np.ones(4, np.float32), np.zeros(4, np.float32), logits_t, np.ones(4, np.float32), atoms
    )
    expected = -jax.nn.log_softmax(logits_tm1[np.arange(4), actions], axis=-1)[:, 3]
    np.testing.assert_allclose(per_item, expected, rtol=1e-5)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)


def test_losses_check_shapes():
    with pytest.raises(AssertionError):
        losses.dqn_loss(np.zeros((4, 3)), np.zeros(4, np.int32), np.zeros(4), np.zeros(4), np.zeros((4, 2)), np.ones(4))
    with pytest.raises(AssertionError):
        losses.categorical_loss(np.zeros((2, 5)), 0, 0.0, 0.9, np.zeros((2, 5)), jnp.zeros(4))


def test_importance_weights_are_inverse_probabilities_scaled_to_one():
    weights = losses.importance_weights(jnp.array([0.1, 0.4, 0.025]), 0.5)
    np.testing.assert_allclose(weights, [0.5, 0.25, 1.0], rtol=1e-4)


@pytest.mark.parametrize("distributional", [False, True])
def test_learner_fits_a_batch_and_refreshes_the_target_on_its_period(distributional):
    config = agent_config(distributional=distributional, target_update_period=3, importance_exponent=0.5)
    learner = make_learner(config, total_updates=100)
    batch = random_batch(np.random.default_rng(2))
    initial_target = [np.array(leaf) for leaf in jax.tree_util.tree_leaves(learner.state["target"])]
    first_loss = None
    for update in range(1, 61):
        priorities, metrics = learner.update(batch)
        first_loss = first_loss if first_loss is not None else float(metrics["loss"])
        target, online = (jax.tree_util.tree_leaves(learner.state[k]) for k in ("target", "online"))
        if update < 3:
            assert all(np.array_equal(a, b) for a, b in zip(target, initial_target, strict=True))
        if update % 3 == 0:
            assert all(np.array_equal(a, b) for a, b in zip(target, online, strict=True))
        elif update > 3:
            assert not all(np.array_equal(a, b) for a, b in zip(target, online, strict=True))
    assert priorities.shape == (6,) and np.all(priorities >= 0)
    assert learner.updates == 60
    assert float(metrics["loss"]) < 0.75 * first_loss  # C51 cannot go below the target's entropy


def test_epsilon_decays_in_gradient_updates_and_greedy_actions_follow_q():
    config = agent_config(epsilon_start=1.0, epsilon_final=0.1, epsilon_decay_updates=100)
    assert [epsilon_at(u, config) for u in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    config = agent_config(epsilon_start=0.0, epsilon_final=0.0)
    model = networks.make_network(config, (4,), 2, nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    actor = EpsilonGreedyPolicy(config, graphdef, 2, seed=0)
    observations = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    expected = np.argmax(np.asarray(model(observations)), axis=1)
    assert [actor.select_action(params, o, 10) for o in observations] == expected.tolist()


def test_c51_actor_acts_on_the_mean_of_the_distribution():
    config = agent_config(distributional=True, epsilon_start=0.0, epsilon_final=0.0)
    model = networks.make_network(config, (4,), 2, nnx.Rngs(0))
    observations = np.random.default_rng(4).normal(size=(10, 4)).astype(np.float32)
    means = (jax.nn.softmax(model(observations), axis=-1) * atoms_of(config)).sum(-1)
    actor = EpsilonGreedyPolicy(config, nnx.split(model)[0], 2, seed=0)
    assert [actor.select_action(nnx.state(model), o, 0) for o in observations] == np.argmax(means, 1).tolist()


def test_bad_names_list_the_choices():
    with pytest.raises(UnknownNameError, match="unknown q-network 'cnn'; valid choices: minatar, mlp, nature"):
        networks.make_network(agent_config(network="cnn"), (4,), 2, nnx.Rngs(0))
    config = agent_config()
    config.optimizer.name = "rms"
    with pytest.raises(UnknownNameError, match="unknown optimizer 'rms'; valid choices: .*rmsprop, sgd"):
        make_learner(config, total_updates=10)
