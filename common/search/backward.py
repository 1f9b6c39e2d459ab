"""Layers whose backward pass is a rule given as data, through `jax.custom_vjp` (backprop evolution's search space).

A rule layer computes h = activation(linear(x, w) + b) forward, exactly as a plain layer. Its backward pass does not
use the chain rule: a `rule` maps the quantities the backward pass can see (`OPERANDS`, each shaped like the
pre-activation z) to delta, the signal that replaces dL/dz, and the layer then passes

    dx = linear_vjp_x(delta)   (the gradient handed to the layer below: delta W^T for a dense layer)
    dw = linear_vjp_w(delta)   (the weight update: x^T delta for a dense layer)
    db = delta summed over every axis but the last.

Standard backprop is the rule `delta = g * dact`. `apply_to` chooses where the rule's delta goes: "both",
"weights" (dx keeps backprop's delta) or "inputs" (dw keeps backprop's delta). `linear` is any function linear in
x and in w (a dense matmul, a convolution), so the same rule attaches to Dense and Conv layers alike.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from common.registry import lookup

# What a rule may read, each broadcast to z's shape [B, ..., N] (N output units or channels):
OPERANDS = (
    "g",  # the incoming gradient dL/dh
    "h",  # the layer's output activation(z)
    "z",  # the pre-activation linear(x, w) + b
    "dact",  # the activation's derivative at z (1 for a linear layer)
    "x_rms",  # root mean square of the layer's input, per example: [B, 1, ..., 1]
    "w_rms",  # root mean square of the weights feeding each unit: [N]
    "noise",  # standard normal, fresh per step and layer (seeded from the bits of g: no RNG state)
)

Rule = Callable[[Mapping[str, jax.Array]], jax.Array]  # operands -> delta, shaped like z
Linear = Callable[[jax.Array, jax.Array], jax.Array]  # (x, w) -> z without bias, linear in each argument
APPLY_TO = {"both": (True, True), "weights": (False, True), "inputs": (True, False)}  # (dx, dw) use the rule


def backprop(operands: Mapping[str, jax.Array]) -> jax.Array:
    """Standard backprop as a rule: delta = dL/dz = g * activation'(z)."""
    return operands["g"] * operands["dact"]


def backward_operands(g, x, w, z, h, dact) -> dict[str, jax.Array]:
    """The OPERANDS of one layer's backward pass, each broadcast to z's shape [B, ..., N]."""
    batch_axes = tuple(range(1, x.ndim))
    x_rms = jnp.sqrt(jnp.mean(jnp.square(x), axis=batch_axes)).reshape((-1,) + (1,) * (z.ndim - 1))
    w_rms = jnp.sqrt(jnp.mean(jnp.square(w.reshape(-1, w.shape[-1])), axis=0))
    seed = jax.lax.bitcast_convert_type(jnp.sum(g).astype(jnp.float32), jnp.int32)
    noise = jax.random.normal(jax.random.PRNGKey(seed), z.shape, z.dtype)
    values = {"g": g, "h": h, "z": z, "dact": dact, "x_rms": x_rms, "w_rms": w_rms, "noise": noise}
    return {name: jnp.broadcast_to(value, z.shape).astype(z.dtype) for name, value in values.items()}


def rule_layer(
    linear: Linear, activation: Callable[[jax.Array], jax.Array], rule: Rule, apply_to: str = "both"
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """f(x, w, b) = activation(linear(x, w) + b) whose VJP follows `rule` (see the module docstring).

    activation must be elementwise (its derivative is read off one VJP with a cotangent of ones)."""
    to_inputs, to_weights = lookup(APPLY_TO, apply_to, "rule target (apply_to)")

    def forward(x, w, b):
        z = linear(x, w) + b
        return activation(z), z

    @jax.custom_vjp
    def layer(x, w, b):
        return forward(x, w, b)[0]

    def layer_fwd(x, w, b):
        h, z = forward(x, w, b)
        return h, (x, w, b, z, h)

    def layer_bwd(residuals, g):
        x, w, b, z, h = residuals
        _, activation_vjp = jax.vjp(activation, z)
        (dact,) = activation_vjp(jnp.ones_like(g))
        operands = backward_operands(g, x, w, z, h, dact)
        delta = rule(operands).astype(z.dtype)
        exact = backprop(operands)
        dx_delta, dw_delta = (delta if to_inputs else exact), (delta if to_weights else exact)
        _, linear_vjp = jax.vjp(linear, x, w)
        dx, dw = linear_vjp(dx_delta)
        if dw_delta is not dx_delta:
            _, dw = linear_vjp(dw_delta)
        return dx, dw, jnp.sum(dw_delta, axis=tuple(range(z.ndim - b.ndim)))  # b: [N], or a scalar 0

    layer.defvjp(layer_fwd, layer_bwd)
    return layer


def dense(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [B, M] @ w [M, N] -> [B, N]."""
    return x @ w


def conv(stride: int = 1, padding: str | int = "SAME") -> Linear:
    """x [B, H, W, C] conv w [kh, kw, C, N] -> [B, ceil(H / stride), ..., N] (NHWC, like nnx.Conv); an int
    padding pads every side by that much (the ResNet's 3x3 layers use 1)."""
    pads = padding if isinstance(padding, str) else ((padding, padding), (padding, padding))

    def apply(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    return apply


class RuleDense(nnx.Module):
    """A dense layer, activation included, whose backward pass follows `rule`: [B, M] -> [B, N]."""

    def __init__(self, in_features, out_features, *, rule: Rule, activation=lambda z: z, apply_to="both", rngs):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.layer = rule_layer(dense, activation, rule, apply_to)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.layer(x, self.kernel.value, self.bias.value)


class RuleConv(nnx.Module):
    """A kxk convolution, activation included, whose backward pass follows `rule`: [B, H, W, C] -> [B, H', W', N].

    Without a bias it is a drop-in ResNet spatial layer (`spatial_layer(rule)`)."""

    def __init__(
        self,
        in_features,
        out_features,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: str | int = "SAME",
        use_bias: bool = True,
        rule: Rule,
        activation=lambda z: z,
        apply_to: str = "both",
        rngs,
    ):
        shape = (kernel_size, kernel_size, in_features, out_features)
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.layer = rule_layer(conv(stride, padding), activation, rule, apply_to)

    def __call__(self, x: jax.Array) -> jax.Array:
        bias = jnp.zeros((), x.dtype) if self.bias is None else self.bias.value
        return self.layer(x, self.kernel.value, bias)


def spatial_layer(rule: Rule, apply_to: str = "both"):
    """A ResNet `spatial_layer` factory (common/nn/resnet.py): the 3x3 conv (padding 1, no bias) under `rule`."""

    def factory(in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> RuleConv:
        return RuleConv(
            in_features,
            out_features,
            3,
            stride=stride,
            padding=1,
            use_bias=False,
            rule=rule,
            apply_to=apply_to,
            rngs=rngs,
        )

    return factory
