"""The ResNet family: shapes, pluggable spatial layer and activation, jit through split/merge, BatchNorm modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import resnet
from common.registry import UnknownNameError


@pytest.mark.parametrize(("name", "size"), [("resnet_tiny", 8), ("resnet20", 16), ("resnet164", 8)])
def test_cifar_family_output_shape(name, size):
    model = resnet.make_resnet(name, num_classes=7, in_features=3, rngs=nnx.Rngs(0))
    x = np.random.default_rng().normal(size=(2, size, size, 3)).astype(np.float32)
    assert model(jnp.asarray(x)).shape == (2, 7)


@pytest.mark.parametrize("name", ["resnet26", "resnet38", "resnet50"])
def test_imagenet_family_shapes_abstractly(name):
    model = nnx.eval_shape(lambda: resnet.make_resnet(name, num_classes=1000, in_features=3, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, jax.ShapeDtypeStruct((2, 64, 64, 3),
                                                                                            jnp.float32))
    assert out.shape == (2, 1000)


def test_spatial_layer_factory_is_used_in_every_block():
    calls = []

    def conv5x5(in_features, out_features, *, stride, rngs):
        calls.append((in_features, out_features, stride))
        return nnx.Conv(in_features, out_features, (5, 5), strides=stride, use_bias=False, rngs=rngs)

    model = resnet.make_resnet("resnet20", num_classes=10, in_features=1, spatial_layer=conv5x5, rngs=nnx.Rngs(0))
    assert len(calls) == 18  # 9 basic blocks x 2 spatial layers
    assert [c[2] for c in calls].count(2) == 2  # one strided layer at the start of stages 2 and 3
    assert model.blocks[0].spatial1.kernel.value.shape == (5, 5, 16, 16)
    assert model(jnp.zeros((1, 12, 12, 1))).shape == (1, 10)

    bottleneck_calls = len(calls)
    resnet.make_resnet("resnet26", num_classes=10, in_features=3, spatial_layer=conv5x5, rngs=nnx.Rngs(0))
    assert len(calls) - bottleneck_calls == 8  # one spatial layer per bottleneck block, 1+2+4+1 blocks


def test_activation_is_used_with_its_own_parameters():
    model = resnet.make_resnet("resnet_tiny", num_classes=10, in_features=1, activation="swish", rngs=nnx.Rngs(0))
    betas = [x for path, x in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
             if "beta" in jax.tree_util.keystr(path)]
    # stem (8) + per block: 2 activations of the block width; widths 8, 16, 32
    assert sorted(b.shape[0] for b in betas) == sorted([8] + [8, 8] + [16, 16] + [32, 32])


def test_jit_through_split_merge_matches_eager():
    model = resnet.make_resnet("resnet_tiny", num_classes=4, in_features=3, activation="gelu", rngs=nnx.Rngs(1))
    model.eval()
    x = jnp.asarray(np.random.default_rng().normal(size=(3, 10, 10, 3)), jnp.float32)
    graphdef, state = nnx.split(model)
    jitted = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    np.testing.assert_allclose(jitted(state, x), model(x), rtol=1e-5, atol=1e-5)


def test_train_mode_updates_batch_stats_and_eval_mode_does_not():
    model = resnet.make_resnet("resnet_tiny", num_classes=4, in_features=3, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng().normal(loc=2.0, size=(4, 8, 8, 3)), jnp.float32)
    before = np.asarray(model.stem.norm_act.norm.mean.value)
    model.eval()
    model(x)
    np.testing.assert_array_equal(model.stem.norm_act.norm.mean.value, before)
    model.train()
    model(x)
    assert not np.allclose(model.stem.norm_act.norm.mean.value, before)


def test_stage_count_must_match_stem():
    with pytest.raises(ValueError, match=r"'cifar' stem takes 3 stages, got stage_sizes=\(1, 1, 1, 1\)"):
        resnet.make_resnet("resnet_tiny", num_classes=2, in_features=1, stage_sizes=(1, 1, 1, 1), rngs=nnx.Rngs(0))


def test_unknown_names_list_choices():
    with pytest.raises(UnknownNameError, match="unknown resnet 'resnet18'; valid choices: resnet164, resnet20, "):
        resnet.make_resnet("resnet18", num_classes=2, in_features=1, rngs=nnx.Rngs(0))
    with pytest.raises(UnknownNameError, match="unknown resnet block 'wide'; valid choices: basic, bottleneck"):
        resnet.make_resnet("resnet20", num_classes=2, in_features=1, block="wide", rngs=nnx.Rngs(0))
