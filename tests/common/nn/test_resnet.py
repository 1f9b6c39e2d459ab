"""The ResNet family: shapes, pluggable spatial layer and activation, jit through split/merge, BatchNorm modes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import resnet
from common.registry import UnknownNameError


def random_images(*shape):
    return jnp.asarray(np.random.default_rng().normal(size=shape), jnp.float32)


def abstract_resnet(name, **kwargs):
    """Shapes only: large nets are never initialised or run in tests."""
    return nnx.eval_shape(lambda: resnet.make_resnet(name, rngs=nnx.Rngs(0), **kwargs))


def param_shapes(module, name):
    """Shapes of every parameter whose path ends in `name`."""
    state = nnx.state(module, nnx.Param)
    return [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(state) if path[-2].key == name]


@pytest.mark.parametrize(("name", "size"), [("resnet_tiny", 8), ("resnet20", 16), ("resnet56", 8), ("resnet164", 8)])
def test_cifar_family_output_shape(name, size):
    model = resnet.make_resnet(name, num_classes=7, in_features=3, rngs=nnx.Rngs(0))
    logits = model(random_images(2, size, size, 3))
    assert logits.shape == (2, 7)
    assert np.all(np.isfinite(logits))


@pytest.mark.parametrize("name", ["resnet26", "resnet38", "resnet50"])
def test_imagenet_family_shapes_abstractly(name):
    model = abstract_resnet(name, num_classes=1000, in_features=3)
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    assert jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x).shape == (2, 1000)
    # 7x7/2 conv + 3x3/2 pool, then stages at strides 4, 8, 16, 32 with 256 ... 2048 channels
    assert model.head.kernel.value.shape == (2048, 1000)


@pytest.mark.parametrize("size", [28, 9])
def test_strided_stem_halves_the_resolution_of_every_stage(size):
    """The strided stem's conv is the CIFAR stem's at stride 2 (same weights, every other pixel); the stages then
    run at ceil(size/2), ceil(size/4), ceil(size/8)."""
    strided = resnet.make_resnet("resnet_tiny", num_classes=3, in_features=1, stem="cifar_stride2", rngs=nnx.Rngs(0))
    full = resnet.make_resnet("resnet_tiny", num_classes=3, in_features=1, rngs=nnx.Rngs(0))
    x = random_images(2, size, size, 1)
    np.testing.assert_allclose(strided.stem.conv(x), full.stem.conv(x)[:, ::2, ::2], rtol=1e-5, atol=1e-5)
    shapes = []
    y = strided.stem(x)
    for block in strided.blocks:
        y = block(y)
        shapes.append(y.shape[1:3])
    half = -(-size // 2)
    assert shapes == [(half, half), (-(-half // 2),) * 2, (-(-half // 4),) * 2]
    assert strided(x).shape == (2, 3)


def conv5x5(in_features, out_features, *, stride, rngs):
    return nnx.Conv(in_features, out_features, (5, 5), strides=stride, padding=2, use_bias=False, rngs=rngs)


def test_spatial_layer_factory_is_used_in_every_basic_block():
    model = resnet.make_resnet("resnet20", num_classes=10, in_features=1, spatial_layer=conv5x5, rngs=nnx.Rngs(0))
    widths = [16] * 3 + [32] * 3 + [64] * 3
    in_widths = [16, *widths[:-1]]
    assert [block.spatial1.kernel.value.shape for block in model.blocks] == [
        (5, 5, cin, cout) for cin, cout in zip(in_widths, widths, strict=True)
    ]
    assert [block.spatial2.kernel.value.shape for block in model.blocks] == [(5, 5, c, c) for c in widths]
    assert [block.spatial1.strides for block in model.blocks].count(2) == 2  # first block of stages 2 and 3
    assert model.stem.conv.kernel.value.shape == (3, 3, 1, 16)  # the stem keeps its own conv
    assert model(random_images(1, 12, 12, 1)).shape == (1, 10)


def test_spatial_layer_factory_is_used_in_every_bottleneck_block():
    calls = []

    def recording_conv5x5(in_features, out_features, *, stride, rngs):
        calls.append((in_features, out_features, stride))
        return conv5x5(in_features, out_features, stride=stride, rngs=rngs)

    model = abstract_resnet("resnet26", num_classes=10, in_features=3, spatial_layer=recording_conv5x5)
    stage_widths = [64] + [128] * 2 + [256] * 4 + [512]
    assert calls == [(w, w, 2 if i in (1, 3, 7) else 1) for i, w in enumerate(stage_widths)]
    assert [block.spatial.kernel.value.shape for block in model.blocks] == [(5, 5, w, w) for w in stage_widths]
    assert model.blocks[0].expand.kernel.value.shape == (1, 1, 64, 256)


def test_default_spatial_layer_and_shortcut_sample_the_same_pixels():
    x = random_images(1, 9, 10, 2)
    rngs = nnx.Rngs(0)
    dense = resnet.conv3x3(2, 3, stride=1, rngs=rngs)
    strided = resnet.conv3x3(2, 3, stride=2, rngs=rngs)
    strided.kernel.value = dense.kernel.value
    out = strided(x)
    assert out.shape == (1, 5, 5, 3)
    np.testing.assert_allclose(out, dense(x)[:, ::2, ::2], rtol=1e-5, atol=1e-5)  # the 1x1/2 shortcut's pixels


def test_activation_is_used_with_its_own_parameters():
    model = resnet.make_resnet("resnet_tiny", num_classes=10, in_features=1, activation="swish", rngs=nnx.Rngs(0))
    # stem (8), then two activations per basic block at the block width: 8, 16, 32
    assert sorted(param_shapes(model, "beta")) == sorted([(8,), (8,), (8,), (16,), (16,), (32,), (32,)])
    assert model.blocks[1].act1 is not model.blocks[1].act_out
    bottleneck = abstract_resnet("resnet26", num_classes=10, in_features=3, activation="prelu")
    assert [bottleneck.blocks[0].act1.slope.value.shape, bottleneck.blocks[0].act_out.slope.value.shape] == [
        (64,),
        (256,),
    ]
    assert len(param_shapes(bottleneck, "slope")) == 1 + 3 * 8


def test_residual_branches_start_at_zero_unless_disabled():
    model = resnet.make_resnet("resnet_tiny", num_classes=3, in_features=3, rngs=nnx.Rngs(0))
    assert all(np.all(block.norm2.scale.value == 0) for block in model.blocks)
    assert np.all(model.blocks[0].norm1.scale.value == 1)
    model = resnet.make_resnet("resnet_tiny", num_classes=3, in_features=3, zero_init_residual=False, rngs=nnx.Rngs(0))
    assert all(np.all(block.norm2.scale.value == 1) for block in model.blocks)


def test_jit_through_split_merge_matches_eager():
    model = resnet.make_resnet(
        "resnet_tiny", num_classes=4, in_features=3, activation="swish", zero_init_residual=False, rngs=nnx.Rngs(1)
    )
    model.eval()
    x = random_images(3, 10, 10, 3)
    graphdef, state = nnx.split(model)
    jitted = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    np.testing.assert_allclose(jitted(state, x), model(x), rtol=1e-5, atol=1e-5)


def test_train_mode_updates_batch_stats_and_eval_mode_does_not():
    model = resnet.make_resnet("resnet_tiny", num_classes=4, in_features=3, rngs=nnx.Rngs(0))
    x = random_images(4, 8, 8, 3) + 2.0
    stats = lambda: jax.tree_util.tree_leaves(nnx.state(model, nnx.BatchStat))  # noqa: E731
    before = [np.asarray(leaf) for leaf in stats()]
    model.eval()
    model(x)
    for old, new in zip(before, stats(), strict=True):
        np.testing.assert_array_equal(new, old)
    model.train()
    model(x)
    assert all(not np.allclose(new, old) for old, new in zip(before, stats(), strict=True))
    # mean moves by (1 - momentum) of the batch mean
    batch_mean = np.asarray(model.stem.conv(x).mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(model.stem.norm.mean.value, 0.1 * batch_mean, rtol=1e-4, atol=1e-6)


def test_dtype_sets_the_computation_dtype_of_every_matmul():
    model = resnet.make_resnet("resnet_tiny", num_classes=4, in_features=3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda state, x: nnx.merge(graphdef, state)(x))(state, random_images(1, 8, 8, 3))
    matmuls = [eqn for eqn in jaxpr.jaxpr.eqns if eqn.primitive.name in ("conv_general_dilated", "dot_general")]
    assert len(matmuls) == 1 + 6 + 2 + 1  # stem, 2 per block, 2 shortcut projections, head
    assert {eqn.outvars[0].aval.dtype for eqn in matmuls} == {jnp.dtype(jnp.bfloat16)}
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))} == {jnp.dtype("float32")}


def test_stage_count_must_match_stem():
    with pytest.raises(ValueError, match=r"'cifar' stem takes 3 stages, got stage_sizes=\(1, 1, 1, 1\)"):
        resnet.make_resnet("resnet_tiny", num_classes=2, in_features=1, stage_sizes=(1, 1, 1, 1), rngs=nnx.Rngs(0))


def test_unknown_names_list_choices():
    with pytest.raises(UnknownNameError, match="unknown resnet 'resnet18'; valid choices: resnet164, resnet20, "):
        resnet.make_resnet("resnet18", num_classes=2, in_features=1, rngs=nnx.Rngs(0))
    with pytest.raises(UnknownNameError, match="unknown resnet block 'wide'; valid choices: basic, bottleneck$"):
        resnet.make_resnet("resnet20", num_classes=2, in_features=1, block="wide", rngs=nnx.Rngs(0))
    stems = "attention, cifar, cifar_stride2, imagenet"
    with pytest.raises(UnknownNameError, match=f"unknown resnet stem 'vit'; valid choices: {stems}$"):
        resnet.make_resnet("resnet20", num_classes=2, in_features=1, stem="vit", rngs=nnx.Rngs(0))
    with pytest.raises(UnknownNameError, match="unknown activation 'swsh'; valid choices: elu, "):
        resnet.make_resnet("resnet20", num_classes=2, in_features=1, activation="swsh", rngs=nnx.Rngs(0))


def test_one_spatial_layer_per_stage():
    model = abstract_resnet(
        "resnet26", num_classes=10, in_features=3, spatial_layer=[conv5x5, resnet.conv3x3, conv5x5, resnet.conv3x3]
    )
    assert [block.spatial.kernel_size for block in model.blocks] == [(5, 5)] + [(3, 3)] * 2 + [(5, 5)] * 4 + [(3, 3)]
    with pytest.raises(ValueError, match="2 spatial layer factories for 4 stages"):
        abstract_resnet("resnet26", num_classes=10, in_features=3, spatial_layer=[conv5x5, conv5x5])


def test_bottleneck_width_ratios_and_final_conv():
    """HaloNet's rv (spatial layer width), rb (block output width) and df (1x1 conv before the pool)."""
    model = abstract_resnet(
        "resnet26", num_classes=10, in_features=3, spatial_ratio=2.5, output_ratio=0.5, final_features=100
    )
    first, last = model.blocks[0], model.blocks[-1]
    assert first.spatial.kernel.value.shape == (3, 3, 64, 160)
    assert first.expand.kernel.value.shape == (1, 1, 160, 32)
    assert first.shortcut.conv.kernel.value.shape == (1, 1, 64, 32)
    assert last.reduce.kernel.value.shape == (1, 1, 128, 512)
    assert model.final_conv.kernel.value.shape == (1, 1, 256, 100)
    assert model.head.kernel.value.shape == (100, 10)
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    assert jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x).shape == (1, 10)
    with pytest.raises(ValueError, match="bottleneck options"):
        abstract_resnet("resnet20", num_classes=10, in_features=3, output_ratio=2.0)


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        (None, (0, 1, 2, 3)),
        ("late", (2, 3)),
        ("early", (0, 1)),
        ("none", ()),
        ("", ()),
        ("1, -1", (1, 3)),
        ((2,), (2,)),
    ],
)
def test_stage_indices(stages, expected):
    assert resnet.stage_indices(stages, 4) == expected


def test_bad_stage_indices_fail_clearly():
    with pytest.raises(ValueError, match="out of range"):
        resnet.stage_indices("4", 4)
    with pytest.raises(ValueError, match="expected one of"):
        resnet.stage_indices("middle", 4)


def test_stage_spatial_layers_place_the_layer_in_the_chosen_stages_only():
    """The per-stage layer list both attention papers build: the stage's own layer where chosen, the conv elsewhere."""

    def per_stage(stage):
        return functools.partial(resnet.conv3x3, dtype=jnp.bfloat16 if stage else jnp.float16)

    layers = resnet.stage_spatial_layers(per_stage, "1,2", 3)
    assert layers[0] is resnet.conv3x3
    assert [layer.keywords["dtype"] for layer in layers[1:]] == [jnp.bfloat16, jnp.bfloat16]
    model = abstract_resnet("resnet_tiny", num_classes=10, in_features=1, spatial_layer=layers)
    assert [block.spatial1.dtype for block in model.blocks] == [jnp.float32, jnp.bfloat16, jnp.bfloat16]
    assert resnet.stage_spatial_layers(per_stage, "none", 3) == [resnet.conv3x3] * 3
    with pytest.raises(ValueError, match="out of range"):
        resnet.stage_spatial_layers(per_stage, "3", 3)
