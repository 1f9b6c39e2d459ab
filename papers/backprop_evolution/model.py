"""Backprop evolution's networks: every weight layer's backward pass follows the equation `config.model.rule`.

  mlp       flatten -> RuleDense(hidden, activation) x len(hidden) -> RuleDense(num_classes): the search's child
            and the re-training network (Fashion-MNIST).
  convnet   two 3x3 RuleConv (stride 2, activation) -> global mean pool -> RuleDense(num_classes).
  resnet    the common ResNet (`model.resnet`, widened by `model.width`) with the rule in its spatial 3x3 layers,
            the way the LRLC and HaloNet papers swap that layer; stem, shortcuts and head keep backprop. For
            CIFAR-10 users; not run here.
`model.rule` is "backprop" or a searched equation's spec (`rule:...`, papers/backprop_evolution/search_space.py);
`model.apply_to` sends its delta to both the gradient passed down and the weight update, or to one of them.
`build_model(..., specs=[...])` instead builds the network with several equations, one chosen per network by
`backward.select_rule`: the vmapped search children (common/search/child.py:train_children_vmapped).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from ml_collections import ConfigDict

from common.compat import List
from common.nn import resnet
from common.registry import lookup
from common.search import backward
from papers.backprop_evolution import search_space

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


class RuleMLP(nnx.Module):
    """[B, H, W, C] images -> [B, num_classes] logits through dense rule layers."""

    def __init__(self, in_features, hidden, num_classes, *, rule, activation, apply_to, rngs):
        sizes = [in_features, *hidden]
        self.hidden = List(
            [
                backward.RuleDense(m, n, rule=rule, activation=activation, apply_to=apply_to, rngs=rngs)
                for m, n in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        self.head = backward.RuleDense(sizes[-1], num_classes, rule=rule, apply_to=apply_to, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = layer(x)
        return self.head(x)


class RuleConvNet(nnx.Module):
    """[B, H, W, C] -> [B, num_classes]: 3x3 stride-2 rule convolutions, mean pool, a dense rule head."""

    def __init__(self, in_features, hidden, num_classes, *, rule, activation, apply_to, rngs):
        sizes = [in_features, *hidden]
        self.convs = List(
            [
                backward.RuleConv(
                    m, n, 3, stride=2, padding=1, rule=rule, activation=activation, apply_to=apply_to, rngs=rngs
                )
                for m, n in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        self.head = backward.RuleDense(sizes[-1], num_classes, rule=rule, apply_to=apply_to, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = conv(x)
        return self.head(x.mean(axis=(1, 2)))


def _mlp(config, input_shape, num_classes, rule, rngs):
    in_features = input_shape[0] * input_shape[1] * input_shape[2]
    activation = lookup(ACTIVATIONS, config.model.activation, "activation")
    return RuleMLP(
        in_features, config.model.hidden, num_classes, rule=rule, activation=activation,
        apply_to=config.model.apply_to, rngs=rngs,
    )  # fmt: skip


def _convnet(config, input_shape, num_classes, rule, rngs):
    activation = lookup(ACTIVATIONS, config.model.activation, "activation")
    return RuleConvNet(
        input_shape[-1], config.model.hidden, num_classes, rule=rule, activation=activation,
        apply_to=config.model.apply_to, rngs=rngs,
    )  # fmt: skip


def _resnet(config, input_shape, num_classes, rule, rngs):
    return resnet.make_resnet(
        config.model.resnet,
        num_classes=num_classes,
        in_features=input_shape[-1],
        spatial_layer=backward.spatial_layer(rule, config.model.apply_to),
        activation=config.model.activation,
        width=config.model.width,
        rngs=rngs,
    )


MODELS = {"mlp": _mlp, "convnet": _convnet, "resnet": _resnet}


def build_model(
    config: ConfigDict,
    input_shape: tuple[int, int, int],
    num_classes: int,
    rngs: nnx.Rngs,
    specs: Sequence[str] | None = None,
):
    """The config's network under `config.model.rule`, or, given `specs`, under a switch over those equations
    (rule layers holding a `backward.RuleIndex`, 0 until `backward.select_rule` picks another)."""
    if specs is None:
        rule = search_space.resolve_rule(config.model.rule)
    else:
        rule = tuple(search_space.resolve_rule(spec) for spec in specs)
    return lookup(MODELS, config.model.name, "backprop evolution model")(config, input_shape, num_classes, rule, rngs)
