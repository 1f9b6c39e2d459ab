"""The DQN-family learner: one jitted gradient step over the split (online, target, optimizer) state.

Config (the agent's, common/rl/dqn/builder.py): distributional, num_atoms, v_max, optimizer (common/train/optim.py),
target_update_period (gradient updates), huber_delta, importance_exponent (0: no prioritised-replay correction).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from ml_collections import ConfigDict

from common.registry import lookup
from common.rl import replay
from common.rl.agent import split_params
from common.rl.dqn import losses
from common.train import optim


def _rmsprop(cfg: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
    """DQN's optimiser as Dopamine sets it: centered RMSProp, decay 0.95, eps 1e-5."""
    return optax.rmsprop(lr, decay=cfg.get("decay", 0.95), eps=cfg.get("eps", 1e-5), centered=True)


# The shared optimisers plus the one only the DQN family uses.
OPTIMIZERS = {**optim.OPTIMIZERS, "rmsprop": _rmsprop}


def atoms_of(config: ConfigDict) -> jax.Array:
    """The C51 support [num_atoms]: evenly spaced in [-v_max, v_max]."""
    return jnp.linspace(-config.v_max, config.v_max, int(config.num_atoms))


def make_loss_fn(config, graphdef: nnx.GraphDef):
    """The learner's loss: loss_fn(online_params, target_params, data, weights) -> (loss, priorities [batch]), with
    data the replay's ITEM_FIELDS [batch, ...] and weights [batch] the importance weights. The priorities are what
    the learner writes back to the table (|n-step TD error|, or the C51 cross-entropy); the table's sampler raises
    them to replay.priority_exponent. Distributed actors compute new items' initial priorities with it too."""
    atoms = atoms_of(config) if config.distributional else None

    def loss_fn(params, target_params, data, weights):
        online, target = nnx.merge(graphdef, params), nnx.merge(graphdef, target_params)
        out_tm1, out_t = online(data["observation"]), target(data["next_observation"])
        args = (out_tm1, data["action"], data["n_step_return"], data["bootstrap_discount"], out_t, weights)
        if config.distributional:
            return losses.c51_loss(*args, atoms)
        return losses.dqn_loss(*args, float(config.huber_delta))

    return loss_fn


class Learner:
    """Holds `state` = {online, target, optimizer, updates}: the pytree that is checkpointed.

    `step` samples a batch from `dataset` (a replay: `sample()`, and `update_priorities(keys, priorities)` when
    `prioritized`); `update(batch)` is the gradient step on a batch given.
    """

    def __init__(self, config, network: nnx.Module, *, total_updates: int, dataset=None, prioritized: bool = False):
        self.graphdef, params = split_params(network)
        self._dataset, self._prioritized = dataset, prioritized
        factory = lookup(OPTIMIZERS, config.optimizer.name, "optimizer")
        tx = factory(config.optimizer, optim.make_schedule(config.optimizer, total_updates))
        self.state = {
            "online": params,
            "target": jax.tree_util.tree_map(jnp.copy, params),
            "optimizer": tx.init(params),
            "updates": jnp.zeros((), jnp.int32),
        }
        self.config = config
        self._updates = 0  # state["updates"] kept on the host: reading the device's copy waits for the update
        self._update = jax.jit(self._make_update(tx), donate_argnums=0)

    def _make_update(self, tx: optax.GradientTransformation):
        config = self.config
        period = int(config.target_update_period)
        loss_fn = make_loss_fn(config, self.graphdef)

        def update(state, data, probabilities):
            if config.importance_exponent:
                weights = losses.importance_weights(probabilities, float(config.importance_exponent))
            else:
                weights = jnp.ones_like(probabilities)
            (loss, priorities), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state["online"], state["target"], data, weights
            )
            updates, opt_state = tx.update(grads, state["optimizer"], state["online"])
            online = optax.apply_updates(state["online"], updates)
            count = state["updates"] + 1
            refresh = count % period == 0
            target = jax.tree_util.tree_map(lambda t, o: jnp.where(refresh, o, t), state["target"], online)
            new_state = {"online": online, "target": target, "optimizer": opt_state, "updates": count}
            return new_state, priorities, {"loss": loss, "grad_norm": optax.global_norm(grads)}

        return update

    @property
    def updates(self) -> int:
        return self._updates

    @property
    def online_params(self) -> dict:
        return self.state["online"]

    def get_variables(self) -> tuple[int, dict]:
        return self.updates, self.online_params

    def save(self) -> dict:
        return self.state

    def restore(self, state: dict) -> None:
        self.state, self._updates = state, int(state["updates"])

    def step(self) -> dict[str, jax.Array]:
        """One gradient step on a batch sampled from the dataset, whose priorities it then updates."""
        batch = self._dataset.sample()
        priorities, metrics = self.update(batch)
        if self._prioritized:
            self._dataset.update_priorities(batch.keys, np.asarray(priorities))
        return metrics

    def update(self, batch: replay.Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        """One gradient step on `batch`; returns the new priorities [batch] and the step's metrics, both still on
        the device (the update is dispatched, not waited for: a caller that needs neither goes on meanwhile)."""
        data = {name: batch.data[name] for name in replay.ITEM_FIELDS}
        probabilities = np.asarray(batch.probabilities, np.float32)
        self.state, priorities, metrics = self._update(self.state, data, probabilities)
        self._updates += 1
        return priorities, metrics
