"""The DQN-family losses: unbatched rlax functions with shape checks, vmapped over the batch.

Replay items carry the n-step return and the bootstrap discount (common/rl/replay.py), so one function serves
every n: it receives them as rlax's r_t and discount_t.
"""

import chex
import jax
import jax.numpy as jnp
import rlax


def q_learning_td(q_tm1: jax.Array, a_tm1, r_t, discount_t, q_t: jax.Array) -> jax.Array:
    """TD error of one transition: q_tm1, q_t [actions] (online now, target next); a_tm1, r_t, discount_t []."""
    chex.assert_rank([q_tm1, q_t], 1)
    chex.assert_equal_shape([q_tm1, q_t])
    return rlax.q_learning(q_tm1, a_tm1, r_t, discount_t, q_t)


def categorical_loss(logits_tm1: jax.Array, a_tm1, r_t, discount_t, logits_t: jax.Array, atoms: jax.Array):
    """C51 cross-entropy of one transition: logits_tm1, logits_t [actions, atoms]; atoms [atoms] (the support).

    The greedy next action comes from the target network's own distribution (Dopamine's Rainbow: no double Q).
    """
    chex.assert_rank([logits_tm1, logits_t, atoms], [2, 2, 1])
    chex.assert_equal_shape([logits_tm1, logits_t])
    chex.assert_axis_dimension(logits_tm1, 1, atoms.shape[0])
    return rlax.categorical_q_learning(atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t)


def importance_weights(probabilities: jax.Array, exponent: float) -> jax.Array:
    """Prioritised replay's correction [batch]: (1 / probability)**exponent, scaled so the largest is 1."""
    weights = (1.0 / (probabilities + 1e-10)) ** exponent
    return weights / jnp.max(weights)


def dqn_loss(q_tm1, actions, returns, discounts, q_t, weights, huber_delta: float = 1.0):
    """Mean weighted Huber loss over a batch: q_tm1, q_t [batch, actions]; actions, returns, discounts, weights
    [batch]. Returns (loss, |td| [batch] as new priorities)."""
    chex.assert_rank([q_tm1, q_t, actions, returns, discounts, weights], [2, 2, 1, 1, 1, 1])
    td = jax.vmap(q_learning_td)(q_tm1, actions, returns, discounts, q_t)
    return jnp.mean(weights * rlax.huber_loss(td, huber_delta)), jnp.abs(td)


def c51_loss(logits_tm1, actions, returns, discounts, logits_t, weights, atoms):
    """Mean weighted cross-entropy: logits [batch, actions, atoms]. Returns (loss, per-item loss [batch] as new
    priorities; the table's exponent 0.5 then gives Dopamine's sqrt(loss))."""
    chex.assert_rank([logits_tm1, logits_t, actions, returns, discounts, weights], [3, 3, 1, 1, 1, 1])
    per_item = jax.vmap(categorical_loss, in_axes=(0, 0, 0, 0, 0, None))(
        logits_tm1, actions, returns, discounts, logits_t, atoms
    )
    return jnp.mean(weights * per_item), per_item
