"""Child training for a search: several classifiers trained side by side on the same batches, one accuracy each.

A group of children trains as one jitted program: every child is its own model (with its own optimizer state),
and all children take a step on the same batch in the same call. On 2 CPU cores a group costs the same CPU time
per child as one child alone (benchmarks/swish_search_children.py): XLA:CPU runs the children's operations one
after another anyway and already spreads each convolution over both cores; a process pool would add a JAX runtime
and a data pipeline per worker on the same cores. Groups are for accelerators, where one program keeps the device
busy; on CPU one child per program saves every result the moment it exists.

The score is top-1 accuracy on the dataset's eval split, which a search sets to a validation split held out from
the training set (e.g. `train[-5000:]`), never the test split. A child whose loss turns non-finite scores 0 and is
marked diverged.

`train_children_vmapped` trains K children of one architecture as one network vmapped K times: their parameters
and optimizer states stacked on a leading axis, one vmapped step on the shared batch. What differs between the
children must be state (e.g. common/search/backward.py's `RuleIndex`, set per child by `select_rule`), since the
program is built from the first child's structure.
"""

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from common import compat
from common.data import images
from common.train import classification


@dataclasses.dataclass(frozen=True)
class ChildResult:
    """One trained child: validation accuracy (0 if diverged) and the seconds its group took per child."""

    accuracy: float
    diverged: bool
    seconds: float


def _loss(child, batch):  # positional only: nnx.value_and_grad cannot resolve keyword arguments
    return classification.cross_entropy_loss(child, batch, None)


def train_children(
    models: Sequence[nnx.Module], tx: optax.GradientTransformation, dataset: images.ImageDataset, num_steps: int
) -> list[ChildResult]:
    """Trains every model for `num_steps` steps of `tx` on the same training batches; validation accuracies.

    models: classifiers of dataset.input_shape -> dataset.num_classes logits, freshly initialised."""
    for m in models:
        m.train()
    optimizers = [compat.new_optimizer(m, tx) for m in models]
    graphdef, state = nnx.split((list(models), optimizers))
    for m in models:
        m.eval()
    eval_graphdef, _ = nnx.split(list(models))

    def train_step(state, batch):
        """Every child takes one step on `batch`; returns the new state and a [K] bool of finite losses."""
        models, optimizers = nnx.merge(graphdef, state)
        finite = []
        for child, optimizer in zip(models, optimizers, strict=True):
            (loss, _), grads = nnx.value_and_grad(_loss, has_aux=True)(child, batch)
            compat.apply_gradients(optimizer, child, grads)
            finite.append(jnp.isfinite(loss))
        return nnx.state((models, optimizers)), jnp.stack(finite)

    def eval_step(state, batch):
        """[K] correct-prediction counts and the example count of one validation batch."""
        models = nnx.merge(eval_graphdef, state[0])
        correct = jnp.stack([classification.eval_sums(child, batch)["accuracy"] for child in models])
        return correct, batch["mask"].sum()

    return _train_and_score(train_step, eval_step, state, len(models), dataset, num_steps)


def _stack(trees):
    """K pytrees of one structure -> one pytree whose leaves have a leading [K] axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def train_children_vmapped(
    models: Sequence[nnx.Module], tx: optax.GradientTransformation, dataset: images.ImageDataset, num_steps: int
) -> list[ChildResult]:
    """`train_children` for K models of one architecture, vmapped: one program whose size does not grow with K.

    models: classifiers built by the same code (the first one's graph is used for all) whose states have the same
    structure and shapes; they differ only in values, e.g. the rule index of switched rule layers."""
    if not models:
        raise ValueError("train_children_vmapped needs at least one model, got none")
    for m in models:
        m.train()
    optimizers = [compat.new_optimizer(m, tx) for m in models]
    splits = [nnx.split((m, o)) for m, o in zip(models, optimizers, strict=True)]
    graphdef = splits[0][0]

    def layout(tree):
        return jax.tree.structure(tree), [jnp.shape(leaf) for leaf in jax.tree.leaves(tree)]

    for index, (_, child_state) in enumerate(splits):
        if layout(child_state) != layout(splits[0][1]):
            raise ValueError(f"train_children_vmapped: child {index}'s state differs in structure from child 0's")
    state = _stack([child_state for _, child_state in splits])
    for m in models:
        m.eval()
    eval_graphdef, _ = nnx.split(models[0])

    def child_step(child_state, batch):
        """One child's step on `batch`: its new state and whether its loss was finite."""
        child, optimizer = nnx.merge(graphdef, child_state)
        (loss, _), grads = nnx.value_and_grad(_loss, has_aux=True)(child, batch)
        compat.apply_gradients(optimizer, child, grads)
        return nnx.state((child, optimizer)), jnp.isfinite(loss)

    def child_correct(model_state, batch):
        return classification.eval_sums(nnx.merge(eval_graphdef, model_state), batch)["accuracy"]

    def eval_step(state, batch):
        """[K] correct-prediction counts and the example count of one validation batch."""
        return jax.vmap(child_correct, in_axes=(0, None))(state[0], batch), batch["mask"].sum()

    train_step = jax.vmap(child_step, in_axes=(0, None))
    return _train_and_score(train_step, eval_step, state, len(models), dataset, num_steps)


def _train_and_score(train_step, eval_step, state, num_children, dataset, num_steps) -> list[ChildResult]:
    """Runs `num_steps` jitted train steps (state, batch) -> (state, [K] finite) on the dataset's training batches,
    then sums eval_step's (state, batch) -> ([K] correct, count) over the eval split; one ChildResult per child."""
    started = time.perf_counter()
    jit_train_step = jax.jit(train_step, donate_argnums=0)
    all_finite = jnp.ones(num_children, bool)
    batches = dataset.make_train_iterator(0)
    for _ in range(num_steps):
        state, finite = jit_train_step(state, next(batches))
        all_finite = all_finite & finite
    all_finite = np.asarray(all_finite)
    jit_eval_step = jax.jit(eval_step)
    correct, count = np.zeros(num_children), 0.0
    for batch in dataset.make_eval_iterator():
        batch_correct, batch_count = jit_eval_step(state, batch)
        correct += np.asarray(batch_correct)
        count += float(batch_count)
    seconds = (time.perf_counter() - started) / num_children
    return [
        ChildResult(float(c / count) if ok else 0.0, diverged=not ok, seconds=seconds)
        for c, ok in zip(correct, all_finite, strict=True)
    ]
