"""The training loop every paper shares.

A paper supplies a `TrainTask` (model, loss, eval metrics, data); the loop owns everything else: the jitted
step over the split nnx state, data parallelism, periodic eval, Orbax checkpoints (periodic async saves,
restore on start, a save on SIGTERM/SIGINT), optional weight EMA, metrics to TensorBoard and metrics.jsonl,
a progress bar, and a stop with a clear error on a non-finite loss.

Resuming is exact: the per-step PRNG key is `fold_in(seed_key, step)`, the data iterator restarts at the
restored step, and the whole state is saved as the named parts of `common.train.checkpoint` (params,
model_state, opt_state, ema, step), so weights also load alone (`checkpoint.restore_weights`) and a new run can
start from another run's weights (`config.init_from`).
"""

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from ml_collections import ConfigDict
from tqdm.auto import tqdm

from common.errors import UserError
from common.train import checkpoint, sharding
from common.train.checkpoint import Checkpointer, StopRequest
from common.train.metrics import MetricWriter

Batch = dict[str, jax.Array]
LossFn = Callable[[nnx.Module, Batch, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
EvalFn = Callable[[nnx.Module, Batch], dict[str, jax.Array]]


@dataclasses.dataclass
class TrainTask:
    """What a paper hands to `train`.

    loss_fn(model, batch, rng) -> (scalar loss, {name: scalar}) runs in training mode and is differentiated.
    eval_fn(model, batch) -> {name: sum over the batch}, with a "count" entry; the loop divides by the total count.
    """

    model: nnx.Module
    loss_fn: LossFn
    make_train_iterator: Callable[[int], Iterator[dict[str, np.ndarray]]]
    eval_fn: EvalFn | None = None
    make_eval_iterator: Callable[[], Iterator[dict[str, np.ndarray]]] | None = None


class TrainingStopped(Exception):
    """SIGTERM/SIGINT arrived; the run saved its state at `step` and stopped. Raised (not returned) so that
    whatever called `train` (a sweep, a search) stops too instead of going on to its next run."""

    def __init__(self, signal_name: str, step: int, directory: str):
        super().__init__(f"{signal_name} received: saved step {step} to {directory}; rerun the same command to resume.")
        self.signal_name, self.step = signal_name, step


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss or gradient became NaN/Inf; the checkpoints on disk are from before it happened."""

    exit_code = 1  # the run failed; nothing in the command was wrong


def init_sources(init_from: ConfigDict | None) -> list[ConfigDict]:
    """The runs a fresh run starts from: `init_from` is one source (workdir, mapping, part) or a dict of named
    sources (e.g. a source and a target language model), applied in order; sources with an empty workdir are off."""
    if init_from is None:
        return []
    sources = [init_from] if "workdir" in init_from else list(init_from.values())
    return [source for source in sources if source.get("workdir")]


def train(
    task: TrainTask,
    tx: optax.GradientTransformation,
    config: ConfigDict,
    workdir: str,
    *,
    seed: int,
    mesh=None,
    show_progress: bool = True,
) -> dict[str, float]:
    """Trains `task.model` for `config.num_steps` steps in `workdir`, resuming from its latest checkpoint.

    config fields: num_steps, log_every, eval_every (0: only at the end), interim_eval_batches (evaluations
    before the last read only the first this many eval batches, a cheaper learning curve; 0: all; the final
    evaluation always reads the whole split), checkpoint_every, max_to_keep,
    ema_decay (0: off), async_checkpoints, and optionally init_from (workdir, mapping, part: a fresh run starts
    from that run's saved weights, see `checkpoint.warm_start`; or several such sources by name, `init_sources`).
    Returns the final eval metrics (or the last train metrics).
    """
    mesh = sharding.make_data_mesh() if mesh is None else mesh
    num_steps = int(config.num_steps)
    model = task.model
    checkpointer = Checkpointer(
        workdir,
        save_every=int(config.checkpoint_every),
        max_to_keep=int(config.get("max_to_keep", 3)),
        async_save=bool(config.get("async_checkpoints", True)),
    )
    resuming = checkpointer.latest_step() is not None
    if not resuming:
        for source in init_sources(config.get("init_from")):
            read = checkpoint.warm_start(
                model, source.workdir, source.get("mapping", ""), part=source.get("part", "params")
            )
            logging.info("initialised from %s step %d (%s)", source.workdir, read, source.get("mapping", ""))
    model.eval()
    eval_graphdef = nnx.graphdef(model)
    model.train()
    # The state is the checkpoint's named parts: params, model_state (BatchNorm statistics...), opt_state, ema.
    graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
    ema_decay = float(config.get("ema_decay", 0.0))
    train_state = {"params": params, "model_state": model_state, "opt_state": tx.init(params)}
    if ema_decay:
        train_state["ema"] = jax.tree_util.tree_map(jnp.copy, params)
    train_state = jax.device_put(train_state, sharding.replicated(mesh))
    start_step = 0
    if resuming:
        start_step, train_state = checkpointer.restore_newest_readable(train_state)
        say = print if show_progress else logging.info  # a user resuming a run wants to see where it starts
        say(f"resumed from {checkpointer.directory} at step {start_step}")
    writer = MetricWriter(workdir, resume_step=start_step)
    seed_key = jax.random.key(seed)

    def loss_fn(model, batch, rng):  # positional only: nnx.value_and_grad cannot resolve keyword arguments
        return task.loss_fn(model, batch, rng)

    def train_step(train_state, batch, step):
        params = train_state["params"]
        model = nnx.merge(graphdef, params, train_state["model_state"])
        rng = jax.random.fold_in(seed_key, step)
        (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, batch, rng)
        updates, opt_state = tx.update(grads, train_state["opt_state"], params)
        params = optax.apply_updates(params, updates)
        new_state = {"params": params, "model_state": nnx.state(model, nnx.Not(nnx.Param)), "opt_state": opt_state}
        if ema_decay:
            new_state["ema"] = jax.tree_util.tree_map(
                lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, train_state["ema"], params
            )
        grad_norm = optax.global_norm(grads)
        metrics = dict(metrics, loss=loss, grad_norm=grad_norm)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        return new_state, metrics, finite

    def eval_step(train_state, batch):
        params = train_state["ema"] if ema_decay else train_state["params"]
        return task.eval_fn(nnx.merge(eval_graphdef, params, train_state["model_state"]), batch)

    jit_train_step = jax.jit(train_step, donate_argnums=0)
    jit_eval_step = jax.jit(eval_step)

    def evaluate(train_state, max_batches: int = 0) -> dict[str, float]:
        """Mean eval metrics over the eval split, or over its first `max_batches` batches (0: all of them)."""
        sums: dict[str, float] = {}
        eval_batches = task.make_eval_iterator()
        if max_batches:
            eval_batches = itertools.islice(eval_batches, max_batches)
        for batch in sharding.prefetch_to_mesh(eval_batches, mesh):
            for name, value in jit_eval_step(train_state, batch).items():
                sums[name] = sums.get(name, 0.0) + float(value)
        count = sums.pop("count")
        return {f"eval/{name}": value / count for name, value in sums.items()}

    stop = StopRequest()
    progress = tqdm(
        total=num_steps,
        initial=start_step,
        unit="step",
        dynamic_ncols=True,
        disable=not show_progress,
        mininterval=1.0,
        smoothing=0.1,
    )
    last_metrics: dict[str, float] = {}
    sums, count, all_finite = None, 0, jnp.array(True)
    last_good_step = start_step
    eval_every = int(config.get("eval_every", 0))
    interim_eval_batches = int(config.get("interim_eval_batches", 0))
    log_every = int(config.log_every)
    batches = sharding.prefetch_to_mesh(task.make_train_iterator(start_step), mesh)
    tick = time.perf_counter()
    step = start_step
    if step >= num_steps and task.eval_fn is not None:
        last_metrics = evaluate(train_state)  # already finished: report instead of doing nothing
    try:
        while step < num_steps:
            batch = next(batches)
            train_state, metrics, finite = jit_train_step(train_state, batch, step)
            step += 1
            sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
            count += 1
            all_finite = all_finite & finite
            progress.update(1)
            at_end = step == num_steps
            stopping = stop.requested is not None  # read once: a signal may land at any moment below
            wants_save = at_end or step % int(config.checkpoint_every) == 0 or stopping
            if step % log_every == 0 or at_end or wants_save:
                if not bool(all_finite):
                    raise NonFiniteLossError(
                        f"loss or gradient became NaN/Inf between steps {step - count} and {step}; stopped without"
                        f" saving. The last good checkpoint is step {last_good_step} in {checkpointer.directory}."
                        " Lower the learning rate or check the data, then rerun to resume from it."
                    )
            if step % log_every == 0 or at_end:
                now = time.perf_counter()
                last_metrics = {f"train/{k}": float(v) / count for k, v in sums.items()}
                last_metrics["train/steps_per_second"] = count / max(now - tick, 1e-9)
                writer.write(step, last_metrics)
                progress.set_postfix(loss=f"{last_metrics['train/loss']:.4f}", refresh=False)
                sums, count, tick = None, 0, now
            if task.eval_fn is not None and ((eval_every and step % eval_every == 0) or at_end):
                last_metrics = evaluate(train_state, max_batches=0 if at_end else interim_eval_batches)
                writer.write(step, last_metrics)
                progress.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in last_metrics.items()))
            if wants_save:
                checkpointer.maybe_save(step, {**train_state, "step": step}, force=at_end or stopping)
                last_good_step = step
            if stopping:
                raise TrainingStopped(stop.requested, step, checkpointer.directory)
    finally:
        progress.close()
        stop.restore_handlers()
        checkpointer.close()
        writer.close()
    # The steps donated the model's arrays; hand the caller the trained (EMA, when on) weights instead.
    nnx.update(model, train_state["ema"] if ema_decay else train_state["params"], train_state["model_state"])
    return last_metrics
