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

from collections.abc import Callable, Mapping, Sequence

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
    layer = switch_rule_layer(linear, activation, (rule,), apply_to)  # a one-rule switch calls the rule directly
    return lambda x, w, b: layer(x, w, b, 0)


def switch_rule_layer(
    linear: Linear, activation: Callable[[jax.Array], jax.Array], rules: Sequence[Rule], apply_to: str = "both"
) -> Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]:
    """f(x, w, b, index): `rule_layer` whose rule is rules[index], index an int32 scalar that may be traced.

    The index is a primal input of the custom VJP (no cotangent), so `jax.vmap` over stacked weights and a [K]
    index trains K networks, each under its own rule, in one program: `lax.switch` then evaluates every rule and
    selects per network, which is cheap since rules are elementwise and the linear maps are batched once."""
    if not rules:
        raise ValueError("switch_rule_layer needs at least one rule, got an empty sequence")
    to_inputs, to_weights = lookup(APPLY_TO, apply_to, "rule target (apply_to)")
    branches = tuple(rules)

    def forward(x, w, b):
        z = linear(x, w) + b
        return activation(z), z

    @jax.custom_vjp
    def layer(x, w, b, index):
        return forward(x, w, b)[0]

    def layer_fwd(x, w, b, index):
        h, z = forward(x, w, b)
        return h, (x, w, b, z, h, index)

    def layer_bwd(residuals, g):
        x, w, b, z, h, index = residuals
        _, activation_vjp = jax.vjp(activation, z)
        (dact,) = activation_vjp(jnp.ones_like(g))
        operands = backward_operands(g, x, w, z, h, dact)
        delta = jax.lax.switch(index, branches, operands).astype(z.dtype)
        exact = backprop(operands)
        dx_delta, dw_delta = (delta if to_inputs else exact), (delta if to_weights else exact)
        _, linear_vjp = jax.vjp(linear, x, w)
        dx, dw = linear_vjp(dx_delta)
        if dw_delta is not dx_delta:
            _, dw = linear_vjp(dw_delta)
        db = jnp.sum(dw_delta, axis=tuple(range(z.ndim - b.ndim)))  # b: [N], or a scalar 0
        return dx, dw, db, None  # the index has no cotangent

    layer.defvjp(layer_fwd, layer_bwd)
    return layer


class RuleIndex(nnx.Variable):
    """Which of a switched layer's rules its backward pass follows: an int32 scalar, never trained. Part of the
    model's state, so stacked children each carry their own (`select_rule`)."""


def select_rule(model: nnx.Module, index: int) -> nnx.Module:
    """Points every switched rule layer of `model` at rules[index]; returns `model`."""
    found = False
    for _, node in nnx.iter_graph(model):
        if isinstance(node, RuleIndex):
            node.value = jnp.asarray(index, jnp.int32)
            found = True
    if not found:
        raise ValueError(f"select_rule: {type(model).__name__} has no switched rule layer (build it with rules=(...))")
    return model


def _layer_and_index(linear: Linear, activation, rule: Rule | Sequence[Rule], apply_to: str):
    """(layer function, RuleIndex or None): a switched layer when `rule` is a sequence of rules."""
    if callable(rule):
        return rule_layer(linear, activation, rule, apply_to), None
    return switch_rule_layer(linear, activation, rule, apply_to), RuleIndex(jnp.zeros((), jnp.int32))


def _call(layer, index: RuleIndex | None, x, w, b):
    return layer(x, w, b) if index is None else layer(x, w, b, index.value)


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
    """A dense layer, activation included, whose backward pass follows `rule`: [B, M] -> [B, N].

    A sequence of rules makes a switched layer: rules[i] for the i set by `select_rule` (0 at first)."""

    def __init__(self, in_features, out_features, *, rule: Rule, activation=lambda z: z, apply_to="both", rngs):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.layer, self.rule_index = _layer_and_index(dense, activation, rule, apply_to)

    def __call__(self, x: jax.Array) -> jax.Array:
        return _call(self.layer, self.rule_index, x, self.kernel.value, self.bias.value)


class RuleConv(nnx.Module):
    """A kxk convolution, activation included, whose backward pass follows `rule`: [B, H, W, C] -> [B, H', W', N].

    Without a bias it is a drop-in ResNet spatial layer (`spatial_layer(rule)`). A sequence of rules makes a
    switched layer, as for RuleDense."""

    def __init__(
        self,
        in_features,
        out_features,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: str | int = "SAME",
        use_bias: bool = True,
        rule: Rule | Sequence[Rule],
        activation=lambda z: z,
        apply_to: str = "both",
        rngs,
    ):
        shape = (kernel_size, kernel_size, in_features, out_features)
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.layer, self.rule_index = _layer_and_index(conv(stride, padding), activation, rule, apply_to)

    def __call__(self, x: jax.Array) -> jax.Array:
        bias = jnp.zeros((), x.dtype) if self.bias is None else self.bias.value
        return _call(self.layer, self.rule_index, x, self.kernel.value, bias)


def spatial_layer(rule: Rule | Sequence[Rule], apply_to: str = "both"):
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
