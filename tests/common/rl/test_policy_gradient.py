"""REINFORCE and A2C gradients against finite differences of the exact return on a tiny MDP, whose four
trajectories are enumerated with their probabilities as weights (so the estimate is exact, not sampled)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from common.registry import UnknownNameError
from common.rl import policy_gradient
from common.rl.policies import make_policy, make_value_function

# Two steps, two actions, undiscounted. Step 0 starts in state 0; action a leads to state 1 + a; the episode
# terminates after step 1. Rewards r[state, action].
REWARDS = np.array([[1.0, 0.0], [0.0, 2.0], [1.5, -1.0]], np.float32)
ONE_HOT = np.eye(3, dtype=np.float32)


def trajectories():
    """[(a0, a1)] -> observations [4, 2, 3], next observations, actions [4, 2], rewards [4, 2]."""
    paths = list(itertools.product([0, 1], repeat=2))
    states = np.array([[0, 1 + a0] for a0, _ in paths])
    actions = np.array(paths, np.int32)
    rewards = REWARDS[states, actions]
    next_states = np.stack([states[:, 1], states[:, 1]], 1)  # the last one is never used: terminated
    return ONE_HOT[states], ONE_HOT[next_states], actions, rewards


def exact_return(policy, params) -> jax.Array:
    observations, _, actions, rewards = trajectories()
    log_probs = policy.log_prob(params, observations, actions)  # [4, 2]
    return jnp.sum(jnp.exp(log_probs.sum(1)) * rewards.sum(1))


@pytest.mark.parametrize(("estimator", "gae_lambda"), [("reinforce", 0.5), ("a2c", 1.0)])
def test_gradient_matches_finite_differences(estimator, gae_lambda):
    policy = make_policy(3, 2, 0, (4,))
    params = policy.init(jax.random.key(0))
    critic = make_value_function(3, (4,))
    critic_params = critic.init(jax.random.key(1))  # an arbitrary baseline: unbiased all the same
    observations, next_observations, actions, rewards = trajectories()
    terminated = np.tile([0.0, 1.0], (4, 1)).astype(np.float32)
    advantages, _ = jax.vmap(
        lambda r, term, v, nv: policy_gradient.advantages_and_returns(
            estimator, r, term, jnp.zeros(2), v, nv, discount=1.0, gae_lambda=gae_lambda
        )
    )(rewards, terminated, critic.apply(critic_params, observations), critic.apply(critic_params, next_observations))
    weights = jnp.repeat(jnp.exp(policy.log_prob(params, observations, actions).sum(1)), 2)

    def surrogate(p):
        log_probs = policy.log_prob(p, observations, actions).ravel()
        return policy_gradient.surrogate_objective(log_probs, advantages.ravel(), weights) * log_probs.size

    estimate, _ = ravel_pytree(jax.grad(surrogate)(params))
    flat, unravel = ravel_pytree(params)
    eps = 1e-2
    basis = np.eye(flat.size, dtype=np.float32)
    finite = np.array(
        [
            (exact_return(policy, unravel(flat + eps * e)) - exact_return(policy, unravel(flat - eps * e))) / (2 * eps)
            for e in basis
        ]
    )
    assert np.abs(finite).max() > 1e-3  # the check has something to compare
    np.testing.assert_allclose(np.asarray(estimate), finite, atol=2e-4, rtol=2e-2)


def test_lambda_returns_bootstrap_at_truncation_and_rollout_end():
    rewards = jnp.array([1.0, 1.0, 1.0, 1.0])
    truncated = jnp.array([0.0, 1.0, 0.0, 0.0])
    values = jnp.zeros(4)
    next_values = jnp.array([0.0, 10.0, 0.0, 20.0])
    _, returns = policy_gradient.advantages_and_returns(
        "reinforce", rewards, jnp.zeros(4), truncated, values, next_values, discount=0.5, gae_lambda=1.0
    )
    np.testing.assert_allclose(np.asarray(returns), [1 + 0.5 * 6, 1 + 0.5 * 10, 1 + 0.5 * 11, 1 + 0.5 * 20])


def test_gaussian_log_prob_matches_the_formula():
    policy = make_policy(3, 0, 2, (4,), init_log_std=-0.3)
    params = policy.init(jax.random.key(0))
    observations = jax.random.normal(jax.random.key(1), (5, 3))
    actions = jax.random.normal(jax.random.key(2), (5, 2))
    mean, sigma = np.asarray(policy.apply(params, observations)), np.exp(-0.3)
    expected = (-0.5 * ((np.asarray(actions) - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)).sum(1)
    np.testing.assert_allclose(np.asarray(policy.log_prob(params, observations, actions)), expected, rtol=1e-5)


def test_unknown_estimator_names_the_choices():
    with pytest.raises(
        UnknownNameError, match="unknown policy-gradient estimator 'ppo'; valid choices: a2c, reinforce"
    ):
        policy_gradient.advantages_and_returns("ppo", *[jnp.zeros(3)] * 5, discount=0.9, gae_lambda=0.9)
