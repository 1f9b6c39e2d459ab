"""The Stein variational policy gradient update (Liu et al., UAI 2017) on n particles held as one batched pytree.

For particles theta_1..theta_n (flattened: [n, D]) and their policy gradients g_j = grad J(theta_j) ([n, D]),
each particle moves along

    phi_i = (1/n) sum_j [ k(theta_j, theta_i) g_j / alpha + grad_{theta_j} k(theta_j, theta_i) ]

with a flat prior (log q0 constant), so only the kernel-weighted gradients (driving) and the kernel's gradient
(repulsion) remain. The kernel is the RBF k(x, y) = exp(-||x - y||^2 / h) with the paper's median heuristic
h = med^2 / log(n + 1), med the median distance between distinct particles (the original code's
median(squared distances) / (2 log(n + 1)) is a factor 2 apart; we use the paper's form). For the RBF kernel
grad_{theta_j} k(theta_j, theta_i) = (2 / h) (theta_i - theta_j) k_ij, so

    phi = (K g / alpha + (2 / h) (diag(K 1) theta - K theta)) / n.

METHODS names the ways particles can share information: "svpg" (the update above), "independent" (phi_i = g_i:
n agents that never interact, the alpha -> 0 limit up to scale) and "joint" (one agent that gets all n agents'
samples; train.py runs it as one particle with n times the environments).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

METHODS = {
    "svpg": "Stein variational policy gradient: kernel-weighted gradients plus repulsion",
    "independent": "n agents, no interaction",
    "joint": "one agent with an n-times larger batch",
}


def squared_distances(x: jax.Array) -> jax.Array:
    """x [n, D] -> ||x_i - x_j||^2 [n, n] (exact zeros on the diagonal)."""
    diff = x[:, None, :] - x[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def median_bandwidth(sq: jax.Array) -> jax.Array:
    """h = median_{i<j} ||x_i - x_j|| ^ 2 / log(n + 1) from squared distances [n, n]; 1 for a single particle
    (no pairs: the kernel is 1 and its gradient 0 whatever h is). Never 0, so identical particles still work."""
    n = sq.shape[0]
    if n == 1:
        return jnp.ones((), sq.dtype)
    rows, cols = jnp.triu_indices(n, k=1)
    med = jnp.median(jnp.sqrt(sq[rows, cols]))
    return jnp.maximum(med * med / jnp.log(n + 1.0), 1e-8)


def rbf_kernel(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [n, D] -> (K [n, n] with K_ij = exp(-||x_i - x_j||^2 / h), h []); h carries no gradient."""
    sq = squared_distances(x)
    h = jax.lax.stop_gradient(median_bandwidth(sq))
    return jnp.exp(-sq / h), h


def svgd_direction(x: jax.Array, grads: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """x, grads [n, D] (grads: ascent directions of J) -> phi [n, D], the SVGD ascent direction of each particle."""
    n = x.shape[0]
    k, h = rbf_kernel(x)
    driving = k @ grads / alpha
    repulsion = (2.0 / h) * (jnp.sum(k, axis=1, keepdims=True) * x - k @ x)
    return (driving + repulsion) / n


def particle_direction(method: str, params, grads, alpha):
    """The ascent direction of every particle for `method` (a key of METHODS): params, grads are pytrees whose
    leaves have a leading particle axis [n, ...]; returns the same structure."""
    if method != "svpg":  # independent and joint: each particle follows its own gradient
        return grads
    flat_params, unravel = flatten_particles(params)
    flat_grads, _ = flatten_particles(grads)
    return jax.vmap(unravel)(svgd_direction(flat_params, flat_grads, alpha))


def flatten_particles(tree) -> tuple[jax.Array, Callable]:
    """A pytree with leaves [n, ...] -> ([n, D], unravel of one particle's [D])."""
    one = jax.tree_util.tree_map(lambda leaf: leaf[0], tree)
    _, unravel = ravel_pytree(one)
    return jax.vmap(lambda p: ravel_pytree(p)[0])(tree), unravel


def temperature(alpha: float, alpha_final: float | None, progress: jax.Array) -> jax.Array:
    """alpha fixed (alpha_final None: the paper's setting) or annealed geometrically to alpha_final as
    progress goes 0 -> 1."""
    if alpha_final is None:
        return jnp.asarray(alpha, jnp.float32)
    return alpha * (alpha_final / alpha) ** progress
