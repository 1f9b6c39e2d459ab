"""Parameter and FLOP counting against hand counts and the standard ResNet numbers."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from common.nn import counting, resnet


def test_linear_flops_and_params():
    layer = nnx.Linear(7, 5, rngs=nnx.Rngs(0))
    assert counting.count_params(layer) == 7 * 5 + 5
    assert counting.count_model_flops(layer, (7,)) == 2 * 7 * 5
    assert counting.count_flops(lambda a, b: a @ b, jnp.zeros((3, 4, 6)), jnp.zeros((6, 2))) == 2 * 3 * 4 * 6 * 2


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 1), (1, 4)])
def test_conv_flops(stride, groups):
    conv = nnx.Conv(8, 12, (3, 3), strides=stride, padding="SAME", feature_group_count=groups, use_bias=False,
                    rngs=nnx.Rngs(0))
    out = 10 // stride
    assert counting.count_model_flops(conv, (10, 10, 8)) == 2 * out * out * 12 * (8 // groups) * 9
    assert counting.count_params(conv) == 9 * (8 // groups) * 12


def test_scan_counts_each_iteration():
    def body(carry, _):
        return carry @ jnp.ones((4, 4)), None

    assert counting.count_flops(lambda x: jax.lax.scan(body, x, None, length=5)[0], jnp.zeros((2, 4))) == 5 * 2 * 2 * 16


def test_batch_norm_statistics_are_not_params():
    norm = nnx.BatchNorm(6, rngs=nnx.Rngs(0))
    assert counting.count_params(norm) == 12  # scale and bias; mean and var are statistics


@pytest.mark.parametrize(("name", "params", "gflops"), [
    ("resnet26", 13_696_552, 4.685),
    ("resnet38", 19_626_792, 6.431),
    ("resnet50", 25_557_032, 8.178),  # the standard ResNet-50 count; 4.09 G multiply-adds
])
def test_imagenet_resnets_match_standard_counts(name, params, gflops):
    model = nnx.eval_shape(lambda: resnet.make_resnet(name, num_classes=1000, in_features=3, rngs=nnx.Rngs(0)))
    assert counting.count_params(model) == params
    assert counting.count_model_flops(model, (224, 224, 3)) / 1e9 == pytest.approx(gflops, rel=1e-3)


def test_cifar_resnet20_count():
    model = resnet.make_resnet("resnet20", num_classes=10, in_features=3, rngs=nnx.Rngs(0))
    # 0.27M as in He et al. (2016), with projection shortcuts (1x1 conv + BN) where the width doubles.
    assert counting.count_params(model) == 272_474
