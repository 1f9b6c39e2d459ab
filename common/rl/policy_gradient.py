"""Policy-gradient estimators for on-policy rollouts, unbatched (one environment's T steps) in rlax's style;
vmap them over environments and policies.

Both estimators weigh log pi(a_t|s_t) by an advantage A_t = G_t - V(s_t) with a lambda-return G_t
(`rlax.lambda_returns`): G_t = r_t + discount_t ((1 - lambda_t) V(s_{t+1}) + lambda_t G_{t+1}).
- "reinforce": lambda = 1, the Monte Carlo return to the episode's end with V as a baseline only.
- "a2c": lambda = gae_lambda, the critic's bootstrapped estimate (GAE(lambda); lambda = 1 is REINFORCE again).
Where an episode was truncated (a step limit) or the rollout ends, lambda_t = 0: the return bootstraps from
V(next observation); where it terminated, discount_t = 0.
"""

import chex
import jax
import jax.numpy as jnp

from common.registry import lookup
from common.rl.reinforce import rollout_returns

ESTIMATORS = {
    "reinforce": "Monte Carlo returns, the value function as a baseline (lambda = 1)",
    "a2c": "advantage actor-critic with GAE(gae_lambda) on the critic's values",
}


def advantages_and_returns(
    estimator: str, rewards, terminated, truncated, values, next_values, *, discount: float, gae_lambda: float
) -> tuple[jax.Array, jax.Array]:
    """rewards, terminated, truncated [T] (0/1); values [T] = V(s_t); next_values [T] = V(s_{t+1}) ->
    (advantages [T], returns [T]), both without gradient (the critic regresses on the returns)."""
    lookup(ESTIMATORS, estimator, "policy-gradient estimator")
    chex.assert_rank([rewards, terminated, truncated, values, next_values], 1)
    chex.assert_equal_shape([rewards, terminated, truncated, values, next_values])
    lam = 1.0 if estimator == "reinforce" else gae_lambda
    continues = (1.0 - truncated).at[-1].set(0.0)
    discounts = discount * (1.0 - terminated)
    values, next_values = jax.lax.stop_gradient(values), jax.lax.stop_gradient(next_values)
    returns = rollout_returns(rewards, discounts, next_values, lam * continues)
    return returns - values, returns


def surrogate_objective(log_probs, advantages, weights=None) -> jax.Array:
    """The score-function surrogate whose gradient estimates grad J: mean_t weights_t log pi(a_t|s_t) A_t, all [N]
    (advantages carry no gradient). With weights the probabilities of enumerated trajectories (summing to N / T
    per step) it is the exact gradient, which the tests use."""
    chex.assert_equal_shape([log_probs, advantages])
    weights = jnp.ones_like(log_probs) if weights is None else weights
    return jnp.mean(weights * log_probs * jax.lax.stop_gradient(advantages))
