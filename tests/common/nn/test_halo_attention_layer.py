"""The halo attention layer: a per-query oracle written here, the stride-2 rule, padding, its two code paths
(the XLA path against the Pallas kernel, interpreted), gradients, the ResNet factory and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.nn import resnet
from common.nn.halo_attention import HaloAttention, halo_attention_layer, halo_attention_param_count
from kernels import backend


def random_input(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@nnx.jit
def apply(layer, x):
    """One compiled call: far faster on CPU than dispatching the layer's ops one by one."""
    return layer(x)


@nnx.jit
def loss_grads(layer, x):
    """Gradients of sum(layer(x)^2) with respect to the layer's parameters and the input."""
    return nnx.grad(lambda layer, x: (layer(x) ** 2).sum(), argnums=(0, 1))(layer, x)


def make_layer(in_features=6, out_features=8, *, seed=0, **kwargs):
    kwargs = {"block_size": 4, "halo_size": 1, "num_heads": 2, "impl": "xla", **kwargs}
    return HaloAttention(in_features, out_features, rngs=nnx.Rngs(seed), **kwargs)


def oracle(layer: HaloAttention, x) -> np.ndarray:
    """Per query, in numpy from the layer's weights: gather its block's (b+2h)^2 window (zeros outside the image),
    logits q.k + q[:d/2].r_h[dy] + q[d/2:].r_w[dx], softmax, weighted sum. Stride 2 keeps even rows and columns."""
    x = np.asarray(x, np.float64)
    n, height, width, _ = x.shape
    b, h, g, s = layer.block_size, layer.halo_size, layer.num_heads, layer.stride
    d, dv = layer.qk_head_features, layer.v_head_features
    q = (x @ np.asarray(layer.query.kernel.value)).reshape(n, height, width, g, d) * d**-0.5
    k = (x @ np.asarray(layer.key.kernel.value)).reshape(n, height, width, g, d)
    v = (x @ np.asarray(layer.value.kernel.value)).reshape(n, height, width, g, dv)
    rel_h, rel_w = np.asarray(layer.rel_h.value), np.asarray(layer.rel_w.value)
    out = np.zeros((n, -(-height // s), -(-width // s), g, dv))
    for y in range(0, height, s):
        for x_ in range(0, width, s):
            top, left = (y // b) * b - h, (x_ // b) * b - h
            logits, values = [], []
            for yy in range(top, top + b + 2 * h):
                for xx in range(left, left + b + 2 * h):
                    inside = 0 <= yy < height and 0 <= xx < width
                    key = k[:, yy, xx] if inside else np.zeros((n, g, d))
                    values.append(v[:, yy, xx] if inside else np.zeros((n, g, dv)))
                    relative = q[:, y, x_, :, : d // 2] @ rel_h[yy - y + b + h - 1]
                    relative += q[:, y, x_, :, d // 2 :] @ rel_w[xx - x_ + b + h - 1]
                    logits.append((q[:, y, x_] * key).sum(-1) + relative)  # [n, g]
            logits = np.stack(logits, -1)
            weights = np.exp(logits - logits.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            out[:, y // s, x_ // s] = np.einsum("ngo,ongd->ngd", weights, np.stack(values))
    return out.reshape(*out.shape[:3], g * dv)


@pytest.mark.parametrize(
    ("size", "stride", "kwargs"),
    [
        ((7, 10), 1, {}),  # padded up to whole blocks, then cropped
        ((7, 9), 2, {}),  # odd sizes at stride 2 round up
        ((6, 6), 1, {"qk_features": 4, "block_size": 2, "halo_size": 2}),  # q/k narrower than v, halo > block
        ((5, 6), 2, {"qk_features": 12, "halo_size": 0}),  # q/k wider than v, no halo
    ],
)
def test_layer_matches_the_per_query_oracle(size, stride, kwargs):
    layer = make_layer(stride=stride, **kwargs)
    x = random_input(2, *size, 6)
    out = apply(layer, x)
    assert out.shape == (2, -(-size[0] // stride), -(-size[1] // stride), 8)
    np.testing.assert_allclose(out, oracle(layer, x), atol=2e-5)


def test_stride_2_keeps_the_top_left_query_of_each_2x2():
    """Same weights at stride 1 and 2: the strided output is the stride-1 output at even rows and columns."""
    x = random_input(1, 11, 16, 6)
    full = apply(make_layer(stride=1), x)
    strided = apply(make_layer(stride=2), x)
    assert strided.shape == (1, 6, 8, 8)
    np.testing.assert_allclose(strided, full[:, ::2, ::2], atol=1e-5)


def test_padding_does_not_change_the_in_image_outputs():
    """Zero keys past the image are what the kernel uses outside it: a map padded by hand gives the same pixels."""
    layer = make_layer()
    x = random_input(1, 6, 7, 6)
    padded = jnp.pad(x, ((0, 0), (0, 2), (0, 1), (0, 0)))
    np.testing.assert_allclose(apply(layer, x), apply(layer, padded)[:, :6, :7], atol=1e-6)


@pytest.mark.parametrize(("stride", "qk_features"), [(1, None), (2, 12), (1, 4)])
def test_xla_path_equals_the_pallas_kernel_interpreted(stride, qk_features):
    """impl="pallas" pads widths; both paths take a strided layer's kept queries."""
    x = random_input(1, 6, 7, 6)
    xla = make_layer(out_features=8, stride=stride, qk_features=qk_features)
    pallas = make_layer(out_features=8, stride=stride, qk_features=qk_features, impl="pallas")
    assert pallas.uses_kernel(jnp.float32)
    assert not xla.uses_kernel(jnp.float32)
    np.testing.assert_allclose(apply(xla, x), apply(pallas, x), atol=1e-5)


@pytest.mark.parametrize("platform", [None, "gpu", "tpu"])
def test_auto_runs_the_kernel_where_it_measured_faster_than_xla(monkeypatch, platform):
    """The rule of the module docstring on a pretended machine: on GPU for b <= 8 in 16-bit floats at either
    stride, on TPU always, on CPU never; impl="pallas" always."""
    monkeypatch.setattr(backend, "accelerator", lambda: platform)
    for stride in (1, 2):
        assert make_layer(impl="auto", stride=stride, block_size=8).uses_kernel(jnp.bfloat16) == (platform is not None)
        assert make_layer(impl="auto", stride=stride).uses_kernel(jnp.float32) == (platform == "tpu")
        assert make_layer(impl="auto", stride=stride, block_size=16).uses_kernel(jnp.bfloat16) == (platform == "tpu")
        assert make_layer(impl="pallas", stride=stride, block_size=16).uses_kernel(jnp.float32)


def test_gradients_reach_every_parameter_and_the_pallas_kernel_gives_the_same():
    x = random_input(2, 7, 8, 6)
    for stride in (1, 2):  # strided: both paths compute the kept queries only
        grads, dx = loss_grads(make_layer(stride=stride, qk_features=4), x)
        leaves = jax.tree_util.tree_leaves_with_path(grads)
        names = {jax.tree_util.keystr(path) for path, _ in leaves}
        expected = {f"['{name}']['kernel'].value" for name in ("query", "key", "value")}
        assert names == expected | {"['rel_h'].value", "['rel_w'].value"}
        for path, grad in leaves:
            assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0, jax.tree_util.keystr(path)
        assert np.all(np.isfinite(dx)) and np.abs(dx).max() > 0

        pallas_grads, pallas_dx = loss_grads(make_layer(stride=stride, qk_features=4, impl="pallas"), x)
        np.testing.assert_allclose(dx, pallas_dx, atol=1e-4)
        for (path, grad), other in zip(leaves, jax.tree_util.tree_leaves(pallas_grads), strict=True):
            np.testing.assert_allclose(grad, other, atol=1e-4, err_msg=jax.tree_util.keystr(path))


def test_parameters_are_the_projections_and_two_half_width_tables():
    layer = make_layer(6, 12, block_size=8, halo_size=3, num_heads=2, qk_features=4)
    assert layer.rel_h.value.shape == layer.rel_w.value.shape == (2 * (8 + 3) - 1, 1)  # d_qk = 2: halves of 1
    params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(nnx.state(layer, nnx.Param)))
    assert params == halo_attention_param_count(6, 12, block_size=8, halo_size=3, num_heads=2, qk_features=4)
    assert params == 6 * (4 + 4 + 12) + 21 * 2


def test_factory_plugs_into_the_resnet_and_picks_heads_and_widths():
    calls = []

    def recording(in_features, out_features, *, stride, rngs):
        layer = halo_attention_layer(2, 1, head_features=4, qk_features="in")(
            in_features, out_features, stride=stride, rngs=rngs
        )
        calls.append((in_features, out_features, stride, layer.num_heads, layer.qk_head_features))
        return layer

    model = nnx.eval_shape(
        lambda: resnet.make_resnet(
            "resnet_tiny", num_classes=3, in_features=1, spatial_layer=recording, block="bottleneck", rngs=nnx.Rngs(0)
        )
    )
    assert calls == [(8, 8, 1, 2, 4), (16, 16, 2, 4, 4), (32, 32, 2, 8, 4)]
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)
    assert jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), state, x).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"impl": "triton"}, "unknown impl 'triton'"),
        ({"stride": 2, "block_size": 3}, "block_size must be even"),
        ({"num_heads": 3}, "must split into 3 heads"),
        ({"num_heads": 8}, "must be even"),
        ({"stride": 3}, "stride must be 1 or 2"),
    ],
)
def test_bad_settings_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_layer(**kwargs)
