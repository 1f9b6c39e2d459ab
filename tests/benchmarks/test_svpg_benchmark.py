"""The SVPG benchmark runs end to end at a tiny size (the real one belongs to `make bench`)."""

import pytest

from benchmarks import svpg


@pytest.mark.long  # compiles three particle updates
@pytest.mark.slow
def test_svpg_benchmark_renders_update_and_rollout_rows():
    text = svpg.markdown(num_particles=2, envs=1, steps=5, repeats=1, config="papers/svpg/config.py:smoke")
    assert "| update |" in text and "| rollout (acting + simulator) |" in text and "x |" in text
    assert "GFLOP/s" in text and "matmul rate" in text and "simulators stepped alone" in text


def test_compiled_flops_counts_a_matmul_as_two_flops_per_multiply_add():
    import jax
    import jax.numpy as jnp

    matmul = jax.jit(lambda a, b: a @ b)
    assert svpg.compiled_flops(matmul, jnp.ones((8, 16)), jnp.ones((16, 4))) == 2 * 8 * 16 * 4
