"""Parameter and FLOP counting against hand counts and the standard ResNet numbers."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from common.nn import counting, resnet


def abstract(shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def test_linear_flops_and_params():
    layer = nnx.Linear(7, 5, rngs=nnx.Rngs(0))
    assert counting.count_params(layer) == 7 * 5 + 5
    assert counting.count_model_flops(layer, (7,)) == 2 * 7 * 5  # the bias add is elementwise: not counted
    assert counting.count_flops(lambda a, b: a @ b, abstract((3, 4, 6)), abstract((6, 2))) == 2 * 3 * 4 * 6 * 2


def test_batched_dot_general():
    def attention_logits(q, k):  # batch b and heads h, contracting d: 2 * (b*h) * q * k * d
        return jnp.einsum("bhqd,bhkd->bhqk", q, k)

    assert counting.count_flops(attention_logits, abstract((2, 3, 5, 8)), abstract((2, 3, 7, 8))) == 2 * 6 * 5 * 7 * 8


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "groups", "out_size"),
    [
        (3, 1, "SAME", 1, 10),
        (3, 2, "SAME", 1, 5),
        (3, 1, "VALID", 1, 8),
        (5, 3, "VALID", 1, 2),
        (3, 1, "SAME", 4, 10),
        (3, 2, "SAME", 8, 5),  # depthwise
    ],
)
def test_conv_flops(kernel, stride, padding, groups, out_size):
    conv = nnx.Conv(
        8,
        16,
        (kernel, kernel),
        strides=stride,
        padding=padding,
        feature_group_count=groups,
        use_bias=False,
        rngs=nnx.Rngs(0),
    )
    assert counting.count_params(conv) == kernel * kernel * (8 // groups) * 16
    flops = 2 * out_size * out_size * 16 * (8 // groups) * kernel * kernel
    assert counting.count_model_flops(conv, (10, 10, 8)) == flops
    x = abstract((3, 10, 10, 8))
    graphdef, state = nnx.split(conv)
    assert counting.count_flops(lambda s, x: nnx.merge(graphdef, s)(x), state, x) == 3 * flops


def test_scan_counts_each_iteration():
    def body(carry, _):
        return carry @ jnp.ones((4, 4)), None

    assert counting.count_flops(lambda x: jax.lax.scan(body, x, None, length=5)[0], abstract((2, 4))) == 5 * 2 * 2 * 16


def test_nested_calls_are_walked():
    matrix = jnp.ones((4, 4))

    @jax.custom_jvp
    def custom_jvp_matmul(x):
        return x @ matrix

    custom_jvp_matmul.defjvp(lambda primals, tangents: (custom_jvp_matmul(*primals), tangents[0] @ matrix))

    @jax.custom_vjp
    def custom_vjp_matmul(x):
        return x @ matrix

    custom_vjp_matmul.defvjp(lambda x: (x @ matrix, None), lambda _, g: (g @ matrix.T,))

    @jax.jit
    def fn(x):
        x = jax.checkpoint(lambda y: y @ matrix)(x)
        x = custom_vjp_matmul(custom_jvp_matmul(x))
        x = jax.jit(lambda y: y @ matrix)(x)
        x = jax.lax.fori_loop(0, 3, lambda i, y: y @ matrix, x)  # static bounds: a scan of length 3
        return jax.lax.while_loop(lambda y: y.sum() < 1e6, lambda y: y @ matrix, x)  # unknown trip count: once

    one_matmul = 2 * 2 * 4 * 4
    assert counting.count_flops(fn, abstract((2, 4))) == (4 + 3 + 1) * one_matmul


def test_cond_counts_the_most_expensive_branch():
    def fn(flag, x):
        return jax.lax.cond(flag, lambda y: y @ jnp.ones((4, 4)) @ jnp.ones((4, 4)), lambda y: y @ jnp.ones((4, 4)), x)

    assert counting.count_flops(fn, jax.ShapeDtypeStruct((), jnp.bool_), abstract((2, 4))) == 2 * (2 * 2 * 4 * 4)


def test_batch_norm_statistics_are_not_params():
    norm = nnx.BatchNorm(6, rngs=nnx.Rngs(0))
    assert counting.count_params(norm) == 12  # scale and bias; mean and var are statistics
    assert counting.count_model_flops(norm, (3, 3, 6)) == 0


def bottleneck_resnet_counts(stage_sizes, size=224, num_classes=1000):
    """(params, multiply-adds) of a 224px bottleneck ResNet, added up layer by layer from the architecture."""
    params = 7 * 7 * 3 * 64 + 2 * 64  # stem conv + BN
    side = size // 2
    macs = side * side * 7 * 7 * 3 * 64
    side //= 2  # max pool
    in_features = 64
    for stage, num_blocks in enumerate(stage_sizes):
        width = 64 * 2**stage
        for index in range(num_blocks):
            out_side = side // 2 if stage > 0 and index == 0 else side
            params += in_features * width + 9 * width * width + width * 4 * width + 2 * (width + width + 4 * width)
            macs += side * side * in_features * width  # 1x1 reduce, before the stride
            macs += out_side * out_side * (9 * width * width + width * 4 * width)  # 3x3 (strided), 1x1 expand
            if index == 0:  # projection shortcut
                params += in_features * 4 * width + 2 * 4 * width
                macs += out_side * out_side * in_features * 4 * width
            side, in_features = out_side, 4 * width
    params += in_features * num_classes + num_classes
    macs += in_features * num_classes
    return params, macs


@pytest.mark.parametrize(
    ("name", "stage_sizes"),
    [
        ("resnet26", (1, 2, 4, 1)),
        ("resnet38", (2, 3, 5, 2)),
        ("resnet50", (3, 4, 6, 3)),
    ],
)
def test_imagenet_resnets_match_hand_counts(name, stage_sizes):
    model = nnx.eval_shape(lambda: resnet.make_resnet(name, num_classes=1000, in_features=3, rngs=nnx.Rngs(0)))
    params, macs = bottleneck_resnet_counts(stage_sizes)
    assert counting.count_params(model) == params
    assert counting.count_model_flops(model, (224, 224, 3)) == 2 * macs


def test_resnet50_matches_published_counts():
    model = nnx.eval_shape(lambda: resnet.make_resnet("resnet50", num_classes=1000, in_features=3, rngs=nnx.Rngs(0)))
    assert counting.count_params(model) == 25_557_032  # torchvision's count
    # He et al. (2016) quote 3.8e9 and most later papers 4.1e9 "FLOPs" that are multiply-adds (4,089,184,256).
    assert counting.count_model_flops(model, (224, 224, 3)) == pytest.approx(2 * 4.1e9, rel=0.03)


def test_cifar_resnet20_count():
    model = nnx.eval_shape(lambda: resnet.make_resnet("resnet20", num_classes=10, in_features=3, rngs=nnx.Rngs(0)))
    # He et al. (2016) quote 0.27M. This implementation gives 272,474, the common variant with projection shortcuts
    # (1x1 conv + BN: 16 * 32 + 32 * 64 + BN 2 * (32 + 64) = 2,752 params) where the width doubles. The
    # paper's option-A shortcuts (strided identity, zero-padded channels) have no parameters: 269,722.
    assert counting.count_params(model) == pytest.approx(272_474, rel=0.02)
    assert counting.count_params(model) == 272_474
    assert counting.count_model_flops(model, (32, 32, 3)) == pytest.approx(2 * 41e6, rel=0.02)  # ~41 M mult-adds
