"""Rule layers (common/search/backward.py): backprop's equation gives jax.grad's gradients bit for bit on an MLP
and a small conv net; other equations and `apply_to` change exactly the parts of the backward pass they should."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.registry import UnknownNameError
from common.search import backward
from papers.backprop_evolution import search_space

LANGUAGE_BACKPROP = search_space.resolve_rule(search_space.BACKPROP)  # g * dact, compiled from the language


def _params(key, shapes):
    """[(w, b)] with w of each shape and b of its last dimension."""
    keys = jax.random.split(key, len(shapes))
    return [
        (jax.random.normal(k, s) / np.sqrt(np.prod(s[:-1])), jnp.full(s[-1], 0.05))
        for k, s in zip(keys, shapes, strict=True)
    ]


def _network_loss(layers, params, x, labels):
    """Cross-entropy of a stack of layer functions f(x, w, b); conv outputs are mean-pooled before the head."""
    for layer, (w, b) in zip(layers, params, strict=True):
        if x.ndim == 4 and w.ndim == 2:
            x = x.mean(axis=(1, 2))
        x = layer(x, w, b)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(x), labels[:, None], axis=1))


def _plain(linear, activation):
    return lambda x, w, b: activation(linear(x, w) + b)


def _identity(z):
    return z


MLP = dict(
    shapes=[(12, 16), (16, 8), (8, 5)],
    linears=[backward.dense] * 3,
    activations=[jax.nn.relu, jax.nn.relu, _identity],
    x_shape=(32, 12),
)
CONVNET = dict(
    shapes=[(3, 3, 2, 4), (3, 3, 4, 6), (6, 5)],
    linears=[backward.conv(2, 1), backward.conv(1, "SAME"), backward.dense],
    activations=[jax.nn.relu, jax.nn.relu, _identity],
    x_shape=(4, 8, 8, 2),
)


def _gradients(net, layer_fn):
    params = _params(jax.random.key(0), net["shapes"])
    x = jax.random.normal(jax.random.key(1), net["x_shape"])
    labels = jax.random.randint(jax.random.key(2), (net["x_shape"][0],), 0, 5)
    layers = [layer_fn(lin, act) for lin, act in zip(net["linears"], net["activations"], strict=True)]
    grad = jax.grad(lambda params, x: _network_loss(layers, params, x, labels), argnums=(0, 1))
    return jax.jit(grad)(params, x)


@pytest.mark.parametrize("net", [MLP, CONVNET], ids=["mlp", "convnet"])
@pytest.mark.parametrize("rule", [backward.backprop, LANGUAGE_BACKPROP], ids=["backprop", "language_equation"])
def test_backprop_equation_gives_jax_grad_exactly(net, rule):
    expected = _gradients(net, _plain)
    actual = _gradients(net, lambda lin, act: backward.rule_layer(lin, act, rule))
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_smooth_activation_matches_to_rounding():
    """tanh's JVP factors its derivative differently from g * dact: equal to float32 rounding, not bitwise."""
    net = dict(MLP, activations=[jnp.tanh, jnp.tanh, _identity])
    expected = _gradients(net, _plain)
    actual = _gradients(net, lambda lin, act: backward.rule_layer(lin, act, backward.backprop))
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-6)


def _one_layer_grads(rule, apply_to):
    (w, b) = _params(jax.random.key(3), [(6, 4)])[0]
    x = jax.random.normal(jax.random.key(4), (5, 6))
    layer = backward.rule_layer(backward.dense, jax.nn.relu, rule, apply_to)
    return jax.grad(lambda x, w, b: jnp.sum(layer(x, w, b) * jnp.arange(4.0)), argnums=(0, 1, 2))(x, w, b), (x, w, b)


def test_sign_rule_and_apply_to():
    """delta = sign(g) * dact goes where apply_to sends it, and backprop's delta everywhere else."""
    sign_rule = search_space.resolve_rule("rule:mul.0.sign.3.x")
    (bx, bw, bb), (x, w, b) = _one_layer_grads(backward.backprop, "both")
    z = x @ w + b
    delta = jnp.sign(jnp.broadcast_to(jnp.arange(4.0), z.shape)) * (z > 0)
    (dx, dw, db), _ = _one_layer_grads(sign_rule, "both")
    np.testing.assert_allclose(dx, delta @ w.T, rtol=1e-6)
    np.testing.assert_allclose(dw, x.T @ delta, rtol=1e-6)
    np.testing.assert_allclose(db, delta.sum(0), rtol=1e-6)
    (dx, dw, db), _ = _one_layer_grads(sign_rule, "weights")
    np.testing.assert_array_equal(dx, bx)
    np.testing.assert_allclose(dw, x.T @ delta, rtol=1e-6)
    (dx, dw, db), _ = _one_layer_grads(sign_rule, "inputs")
    np.testing.assert_allclose(dx, delta @ w.T, rtol=1e-6)
    np.testing.assert_array_equal(dw, bw)
    np.testing.assert_array_equal(db, bb)


def test_operands_shapes_and_noise():
    g = jax.random.normal(jax.random.key(5), (3, 4, 4, 2))
    x = jax.random.normal(jax.random.key(6), (3, 8, 8, 1)) * jnp.arange(1.0, 4.0)[:, None, None, None]
    w = jnp.ones((3, 3, 1, 2)) * jnp.array([1.0, 2.0])
    ops = backward.backward_operands(g, x, w, g, g, g)
    assert set(ops) == set(backward.OPERANDS)
    assert all(v.shape == g.shape for v in ops.values())
    np.testing.assert_allclose(ops["x_rms"][:, 0, 0, 0], jnp.sqrt(jnp.mean(x**2, axis=(1, 2, 3))), rtol=1e-6)
    np.testing.assert_allclose(ops["w_rms"][0, 0, 0], [1.0, 2.0])
    other = backward.backward_operands(g + 1.0, x, w, g, g, g)["noise"]
    assert not np.allclose(ops["noise"], other)  # fresh noise for another gradient
    assert abs(float(ops["noise"].std()) - 1.0) < 0.3


def test_unknown_apply_to_names_the_choices():
    with pytest.raises(UnknownNameError, match="valid choices: both, inputs, weights"):
        backward.rule_layer(backward.dense, _identity, backward.backprop, "bias")


def test_spatial_layer_is_the_resnets_conv3x3_with_a_rule():
    """backward.spatial_layer drops into the common ResNet: with conv3x3's weights it computes the same output, and
    under backprop's equation the same gradients bit for bit; another equation changes them. The whole ResNet
    built with it gives the plain ResNet's logits."""
    from flax import nnx

    from common.nn import resnet

    plain = resnet.conv3x3(3, 4, stride=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(7), (2, 7, 7, 3))
    cotangent = jax.random.normal(jax.random.key(8), (2, 4, 4, 4))

    def vjp(layer):
        layer.kernel.value = plain.kernel.value
        graphdef, state = nnx.split(layer)
        out, pullback = jax.vjp(lambda state, x: nnx.merge(graphdef, state)(x), state, x)
        return out, pullback(cotangent)

    expected_out, expected = vjp(plain)
    out, grads = vjp(backward.spatial_layer(LANGUAGE_BACKPROP)(3, 4, stride=2, rngs=nnx.Rngs(1)))
    np.testing.assert_array_equal(out, expected_out)
    for a, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
    sign_rule = search_space.resolve_rule("rule:mul.0.sign.3.x")
    _, changed = vjp(backward.spatial_layer(sign_rule)(3, 4, stride=2, rngs=nnx.Rngs(1)))
    assert all(
        not np.array_equal(a, e) for a, e in zip(jax.tree.leaves(changed), jax.tree.leaves(expected), strict=True)
    )

    def build(spatial_layer):
        return resnet.make_resnet("resnet_tiny", num_classes=5, in_features=1, spatial_layer=spatial_layer,
                                  rngs=nnx.Rngs(0))  # fmt: skip

    plain_net, rule_net = build(resnet.conv3x3), build(backward.spatial_layer(sign_rule))
    nnx.update(rule_net, nnx.state(plain_net))
    images = jax.random.normal(jax.random.key(9), (2, 8, 8, 1))
    np.testing.assert_array_equal(rule_net(images), plain_net(images))
