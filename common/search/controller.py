"""An RNN controller over a vocabulary's candidates, trained with PPO on their rewards.

Per core unit the controller emits five decisions, in `expressions.DECISIONS` order: binary, input 1, input 2,
unary 1, unary 2. An LSTM reads the previous decision (embedded; a start token first) and a head per decision kind
gives the logits; an input decision of unit i may only pick an operand or one of the i earlier units, so the
others are masked.

Training is PPO's clipped objective (Schulman et al. 2017) on whole candidates: the log-probability of a candidate
is the sum over its decisions, the advantage is its reward minus an exponential moving average of past rewards
(the baseline), and each batch of sampled candidates is reused for `ppo_epochs` gradient steps.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from common import compat
from common.search.expressions import DECISIONS, CoreUnit, Vocabulary


class Controller(nnx.Module):
    """LSTM policy over a candidate's decisions."""

    def __init__(self, vocabulary: Vocabulary, *, hidden: int = 64, rngs: nnx.Rngs):
        self.vocabulary = vocabulary
        sizes = vocabulary.sizes()
        self.offsets = {"binary": 1, "input": 1 + sizes["binary"], "unary": 1 + sizes["binary"] + sizes["input"]}
        self.embed = nnx.Embed(1 + sum(sizes.values()), hidden, rngs=rngs)  # token 0: start
        self.cell = nnx.LSTMCell(hidden, hidden, rngs=rngs)
        self.heads = compat.data({kind: nnx.Linear(hidden, size, rngs=rngs) for kind, size in sizes.items()})
        self.hidden = hidden

    def _step_logits(self, carry, previous_token: jax.Array, step: int):
        """One decision: carry, previous token [B] -> new carry, masked logits [B, choices of this step]."""
        carry, output = self.cell(carry, self.embed(previous_token))
        kind = DECISIONS[step % len(DECISIONS)]
        logits = self.heads[kind](output)
        if kind == "input":
            num_inputs = len(self.vocabulary.language.operands) + step // len(DECISIONS)
            logits = jnp.where(jnp.arange(logits.shape[-1]) < num_inputs, logits, -1e9)  # an operand or earlier unit
        return carry, logits

    def _start(self, batch: int):
        zeros = jnp.zeros((batch, self.hidden))
        return (zeros, zeros), jnp.zeros((batch,), jnp.int32)

    def log_probs(self, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """actions: int [B, T] -> (log-probability of each decision [B, T], entropy of each decision [B, T])."""
        carry, token = self._start(actions.shape[0])
        log_probs, entropies = [], []
        for step in range(actions.shape[1]):
            carry, logits = self._step_logits(carry, token, step)
            log_softmax = jax.nn.log_softmax(logits)
            log_probs.append(jnp.take_along_axis(log_softmax, actions[:, step : step + 1], axis=-1)[:, 0])
            entropies.append(-(jnp.exp(log_softmax) * log_softmax).sum(-1))
            token = actions[:, step] + self.offsets[DECISIONS[step % len(DECISIONS)]]
        return jnp.stack(log_probs, 1), jnp.stack(entropies, 1)

    def sample(self, key: jax.Array, batch: int) -> jax.Array:
        """`batch` candidates' decisions, int32 [batch, T]."""
        carry, token = self._start(batch)
        actions = []
        for step in range(self.vocabulary.num_decisions):
            carry, logits = self._step_logits(carry, token, step)
            action = jax.random.categorical(jax.random.fold_in(key, step), logits).astype(jnp.int32)
            actions.append(action)
            token = action + self.offsets[DECISIONS[step % len(DECISIONS)]]
        return jnp.stack(actions, 1)


def ppo_loss(
    controller: Controller,
    actions: jax.Array,
    old_log_probs: jax.Array,
    advantages: jax.Array,
    clip_epsilon: float,
    entropy_weight: float,
) -> jax.Array:
    """Clipped surrogate: actions [B, T], old_log_probs [B] (sum over decisions), advantages [B] -> scalar."""
    log_probs, entropies = controller.log_probs(actions)
    ratio = jnp.exp(log_probs.sum(-1) - old_log_probs)
    clipped = jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    surrogate = jnp.minimum(ratio * advantages, clipped * advantages)
    return -surrogate.mean() - entropy_weight * entropies.sum(-1).mean()


@nnx.jit(static_argnums=(2,))
def _sample(controller: Controller, key: jax.Array, batch: int):
    actions = controller.sample(key, batch)
    return actions, controller.log_probs(actions)[0].sum(-1)


@nnx.jit(static_argnums=(5, 6))
def _ppo_step(controller, optimizer, actions, old_log_probs, advantages, clip_epsilon, entropy_weight):
    loss, grads = nnx.value_and_grad(ppo_loss)(
        controller, actions, old_log_probs, advantages, clip_epsilon, entropy_weight
    )
    compat.apply_gradients(optimizer, controller, grads)
    return loss


class PPOTrainer:
    """The controller, its Adam optimizer and the EMA baseline; `sample` then `update` with the rewards."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        *,
        seed: int,
        hidden: int = 64,
        learning_rate: float = 5e-3,
        clip_epsilon: float = 0.2,
        entropy_weight: float = 1e-3,
        ppo_epochs: int = 4,
        baseline_decay: float = 0.9,
    ):
        self.controller = Controller(vocabulary, hidden=hidden, rngs=nnx.Rngs(seed))
        self.optimizer = compat.new_optimizer(self.controller, optax.adam(learning_rate))
        self.clip_epsilon, self.entropy_weight = float(clip_epsilon), float(entropy_weight)
        self.ppo_epochs, self.baseline_decay = int(ppo_epochs), float(baseline_decay)
        self.baseline: float | None = None
        self.key = jax.random.key(seed)

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(actions int32 [batch, T], their log-probabilities [batch]) from the current policy."""
        self.key, key = jax.random.split(self.key)
        actions, log_probs = _sample(self.controller, key, batch)
        return np.array(actions), np.array(log_probs)  # writable copies

    def update(self, actions: np.ndarray, old_log_probs: np.ndarray, rewards: np.ndarray) -> float:
        """PPO on one batch: advantages against the EMA baseline, then the baseline moves; returns the last loss."""
        rewards = np.asarray(rewards, np.float32)
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = jnp.asarray(rewards - self.baseline)
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(rewards.mean())
        loss = jnp.nan
        for _ in range(self.ppo_epochs):
            loss = _ppo_step(
                self.controller,
                self.optimizer,
                jnp.asarray(actions),
                jnp.asarray(old_log_probs),
                advantages,
                self.clip_epsilon,
                self.entropy_weight,
            )
        return float(loss)

    def log_probability(self, candidate: Sequence[CoreUnit]) -> float:
        """log p(candidate) under the current policy."""
        actions = jnp.asarray(self.controller.vocabulary.encode(candidate))[None]
        return float(self.controller.log_probs(actions)[0].sum())
