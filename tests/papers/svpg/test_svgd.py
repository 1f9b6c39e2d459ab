"""The SVGD particle update against direct NumPy computations, and its limits: one particle is plain policy
gradient, no gradient is pure repulsion, and on a concave toy objective the particles spread around the optimum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from papers.svpg import model


def numpy_kernel(x: np.ndarray):
    n = len(x)
    distances = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    pairs = distances[np.triu_indices(n, 1)]
    h = np.median(pairs) ** 2 / np.log(n + 1)
    return np.exp(-(distances**2) / h), h


def numpy_direction(x: np.ndarray, grads: np.ndarray, alpha: float) -> np.ndarray:
    """The paper's sum, term by term: phi_i = 1/n sum_j k(x_j, x_i) g_j / alpha + grad_{x_j} k(x_j, x_i)."""
    k, h = numpy_kernel(x)
    n = len(x)
    phi = np.zeros_like(x)
    for i in range(n):
        for j in range(n):
            phi[i] += k[j, i] * grads[j] / alpha - 2.0 / h * (x[j] - x[i]) * k[j, i]
    return phi / n


def test_kernel_and_bandwidth_match_numpy():
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    k, h = model.rbf_kernel(jnp.asarray(x))
    k_ref, h_ref = numpy_kernel(x.astype(np.float64))
    np.testing.assert_allclose(float(h), h_ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(k), k_ref, rtol=1e-5, atol=1e-6)


def test_kernel_gradient_matches_numpy():
    """grad_{x_j} k(x_j, x_i) at fixed h, by autodiff, against -2/h (x_j - x_i) k_ji."""
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    _, h = model.rbf_kernel(jnp.asarray(x))
    k_ref, _ = numpy_kernel(x.astype(np.float64))
    for i, j in [(0, 1), (2, 4), (3, 0)]:
        grad = jax.grad(lambda xj, i=i: jnp.exp(-jnp.sum((xj - x[i]) ** 2) / h))(jnp.asarray(x[j]))
        np.testing.assert_allclose(
            np.asarray(grad), -2.0 / float(h) * (x[j] - x[i]) * k_ref[j, i], rtol=1e-4, atol=1e-6
        )


def test_direction_matches_the_papers_sum():
    rng = np.random.default_rng(2)
    x, grads = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    phi = model.svgd_direction(jnp.asarray(x, jnp.float32), jnp.asarray(grads, jnp.float32), 10.0)
    np.testing.assert_allclose(np.asarray(phi), numpy_direction(x, grads, 10.0), rtol=1e-4, atol=1e-5)


def _particles(n: int, seed: int = 0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return {
        "w": jax.random.normal(keys[0], (n, 3, 2)),
        "b": jax.random.normal(keys[1], (n, 2)),
    }, {"w": jax.random.normal(keys[2], (n, 3, 2)), "b": jnp.ones((n, 2))}


@pytest.mark.parametrize("alpha", [1.0, 10.0])
def test_one_particle_is_plain_policy_gradient(alpha):
    params, grads = _particles(1)
    direction = model.particle_direction("svpg", params, grads, alpha)
    jax.tree_util.tree_map(lambda d, g: np.testing.assert_allclose(d, g / alpha, rtol=1e-6), direction, grads)


def test_independent_particles_follow_their_own_gradients():
    params, grads = _particles(4)
    direction = model.particle_direction("independent", params, grads, 10.0)
    jax.tree_util.tree_map(np.testing.assert_array_equal, direction, grads)
    coupled = model.particle_direction("svpg", params, grads, 10.0)
    assert not np.allclose(coupled["w"], grads["w"] / 10.0)


def test_without_gradients_particles_only_repel():
    """Pure repulsion: the particles spread out and their mean stays where it was (the pushes cancel in pairs)."""
    x = 0.01 * jax.random.normal(jax.random.key(3), (10, 4))
    start_spread = float(jnp.mean(model.squared_distances(x)))
    mean = x.mean(0)
    x = jax.lax.fori_loop(0, 50, lambda _, x: x + 0.05 * model.svgd_direction(x, jnp.zeros_like(x), 1.0), x)
    assert float(jnp.mean(model.squared_distances(x))) > 100 * start_spread
    np.testing.assert_allclose(np.asarray(x.mean(0)), np.asarray(mean), atol=1e-5)


def test_on_a_concave_objective_particles_spread_near_the_optimum():
    """J(x) = -||x - c||^2 / 2 at alpha = 1: the target exp(J) is N(c, I), so the particles centre on c with a
    spread of order 1, neither collapsed onto c (plain gradient ascent) nor far away."""
    c = jnp.array([3.0, -2.0])
    x = jax.random.normal(jax.random.key(4), (20, 2)) - 5.0
    x = jax.lax.fori_loop(0, 600, lambda _, x: x + 0.1 * model.svgd_direction(x, -(x - c), 1.0), x)
    assert float(jnp.linalg.norm(x.mean(0) - c)) < 0.3
    std = np.asarray(x.std(0))
    assert np.all(std > 0.4) and np.all(std < 1.5), std
    ascent = jax.random.normal(jax.random.key(4), (20, 2)) - 5.0
    ascent = jax.lax.fori_loop(
        0, 600, lambda _, a: a + 0.1 * model.particle_direction("independent", a, -(a - c), 1.0), ascent
    )
    assert float(ascent.std(0).max()) < 0.01  # without repulsion every particle collapses onto the optimum


def test_temperature_fixed_or_annealed():
    assert float(model.temperature(10.0, None, jnp.asarray(0.7))) == 10.0
    np.testing.assert_allclose(float(model.temperature(10.0, 0.1, jnp.asarray(1.0))), 0.1, rtol=1e-5)
    np.testing.assert_allclose(float(model.temperature(10.0, 0.1, jnp.asarray(0.5))), 1.0, rtol=1e-5)
