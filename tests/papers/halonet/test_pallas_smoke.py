"""HaloNet's smoke network with impl="pallas": its strided attention layers run the kernel's kept-query mode
(interpreted on CPU), give the XLA path's outputs and gradients, and main.py trains with it end to end. Both are
`long`: interpreting the three attention layers' kernels, forward and backward, takes about 100 s on 2 CPU cores.
The fast set checks the layer's kernel path on its own (tests/common/nn/test_halo_attention_layer.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn.halo_attention import HaloAttention
from papers.halonet import config as halo_config
from papers.halonet import model as halo_model
from tests.helpers import final_metrics, run_main

INPUT_SHAPE = (8, 8, 1)  # sklearn digits, what the smoke config trains on


def smoke_model(impl: str):
    config = halo_config.get_config("smoke")
    config.model.impl = impl
    return halo_model.build_model(config, INPUT_SHAPE, 10, nnx.Rngs(0))


def loss_and_grads(model, x):
    def loss(model):
        return jnp.sum(model(x) ** 2)

    return nnx.value_and_grad(loss)(model)


@pytest.mark.long
def test_smoke_network_runs_its_strided_layers_on_the_kernel_and_matches_xla():
    pallas, xla = smoke_model("pallas"), smoke_model("xla")
    layers = [block.spatial for block in pallas.blocks if isinstance(block.spatial, HaloAttention)]
    assert [layer.stride for layer in layers].count(2) >= 1 and all(layer.uses_kernel(jnp.float32) for layer in layers)
    assert not any(block.spatial.uses_kernel(jnp.float32) for block in xla.blocks)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *INPUT_SHAPE))
    pallas.eval()
    xla.eval()
    pallas_loss, pallas_grads = loss_and_grads(pallas, x)
    xla_loss, xla_grads = loss_and_grads(xla, x)
    np.testing.assert_allclose(pallas_loss, xla_loss, rtol=1e-5)
    leaves = jax.tree_util.tree_leaves_with_path(xla_grads)
    assert any("rel_h" in jax.tree_util.keystr(path) for path, _ in leaves)
    for (path, expected), actual in zip(leaves, jax.tree_util.tree_leaves(pallas_grads), strict=True):
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(actual, expected, atol=1e-4 * scale, err_msg=jax.tree_util.keystr(path))


@pytest.mark.long
@pytest.mark.slow
def test_smoke_config_trains_end_to_end_with_the_interpreted_kernel(tmp_path):
    result = run_main(
        "halonet",
        "--config=papers/halonet/config.py:smoke",
        "--config.model.impl=pallas",
        "--config.train.num_steps=10",
        "--config.train.checkpoint_every=10",
        f"--workdir={tmp_path}",
        timeout=600,
    )
    final = final_metrics(result.stdout)
    assert math.isfinite(final["eval/loss"]) and final["eval/accuracy"] >= 0.0, final
