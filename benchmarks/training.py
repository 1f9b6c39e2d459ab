"""Training-loop overheads, measured side by side in one process.

1. Input pipeline: steps/s of the `make run` model fed by the real tf.data pipeline over offline
   Fashion-MNIST vs the same model fed from batches already in memory (numpy arrays, no tf.data).
   Overhead = 1 - pipeline / in-memory. The two are interleaved (A B A B ...) so machine noise hits both.
2. Checkpointing: how long an Orbax save of the full training state blocks the loop (async: until the
   arrays are copied off the devices; sync: until it is on disk), next to the time of one training step.
"""

import itertools
import statistics
import tempfile
import time

import jax
from flax import nnx

from common import report
from common.train import classification, loop, optim
from common.train.checkpoint import Checkpointer
from common.train.metrics import read_metrics
from papers.swish import config as swish_config
from papers.swish import model as swish_model


def _timed_run(config, dataset, make_iterator) -> float:
    """Steps/s over the logged windows after the first (which holds compilation)."""
    task = loop.TrainTask(model=swish_model.build_model(config, dataset.input_shape, dataset.num_classes,
                                                        nnx.Rngs(0)),
                          loss_fn=classification.cross_entropy_loss, make_train_iterator=make_iterator)
    tx = optim.make_optimizer(config.optimizer, config.train.num_steps)
    with tempfile.TemporaryDirectory() as workdir:
        loop.train(task, tx, config.train, workdir, seed=0, show_progress=False)
        rows = [row for row in read_metrics(workdir) if "train/steps_per_second" in row]
    return statistics.mean(row["train/steps_per_second"] for row in rows[1:])


def input_pipeline(num_steps: int = 120, repeats: int = 2) -> dict:
    config = swish_config.get_config("default")
    config.train.update(num_steps=num_steps, log_every=20, checkpoint_every=10**9, async_checkpoints=False)
    dataset = classification.load_dataset(config)
    in_memory = list(itertools.islice(dataset.make_train_iterator(0), 50))

    def from_memory(start_step):
        return itertools.islice(itertools.cycle(in_memory), start_step % len(in_memory), None)

    pipeline_rates, memory_rates = [], []
    for _ in range(repeats):
        pipeline_rates.append(_timed_run(config, dataset, dataset.make_train_iterator))
        memory_rates.append(_timed_run(config, dataset, from_memory))
    pipeline, memory = statistics.median(pipeline_rates), statistics.median(memory_rates)
    return {"model": f"{config.model.name} ({config.model.activation})", "dataset": config.dataset.name,
            "batch": config.dataset.batch_size, "steps": num_steps, "repeats": repeats,
            "pipeline": pipeline, "memory": memory, "overhead": 1 - pipeline / memory}


def checkpoint_cost(repeats: int = 5) -> dict:
    config = swish_config.get_config("default")
    dataset = classification.load_dataset(config)
    model = swish_model.build_model(config, dataset.input_shape, dataset.num_classes, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optim.make_optimizer(config.optimizer, 100))
    graphdef, state = nnx.split(optimizer)
    batch = next(dataset.make_train_iterator(0))

    @jax.jit
    def step(state, batch):
        optimizer = nnx.merge(graphdef, state)
        grads = nnx.grad(lambda m: classification.cross_entropy_loss(m, batch, None)[0])(optimizer.model)
        optimizer.update(grads)
        return nnx.state(optimizer)

    state = jax.block_until_ready(step(state, batch))
    step_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(step(state, batch))
        step_times.append(time.perf_counter() - start)
    results = {"step": statistics.median(step_times),
               "bytes": sum(x.nbytes for x in jax.tree_util.tree_leaves(state))}
    for mode, async_save in (("async", True), ("sync", False)):
        blocking, total = [], []
        with tempfile.TemporaryDirectory() as workdir:
            checkpointer = Checkpointer(workdir, save_every=1, max_to_keep=2, async_save=async_save)
            for i in range(repeats):
                start = time.perf_counter()
                checkpointer.maybe_save(i + 1, {"optimizer": state}, force=True)
                blocking.append(time.perf_counter() - start)
                checkpointer.wait_until_finished()
                total.append(time.perf_counter() - start)
            checkpointer.close()
        results[mode] = (statistics.median(blocking), statistics.median(total))
    return results


def markdown() -> str:
    started = time.time()
    pipe = input_pipeline()
    ckpt = checkpoint_cost()
    minutes = (time.time() - started) / 60
    pipeline_table = report.markdown_table(
        ["feed", "steps/s", "input-pipeline overhead"],
        [["tf.data pipeline over real Fashion-MNIST", f"{pipe['pipeline']:.2f}", f"{100 * pipe['overhead']:.1f}%"],
         ["same batches from in-memory arrays", f"{pipe['memory']:.2f}", "(reference)"]])
    step_ms = 1000 * ckpt["step"]
    checkpoint_table = report.markdown_table(
        ["save", "blocks the loop (ms)", "until on disk (ms)", "blocking / one step"],
        [[mode, f"{1000 * ckpt[mode][0]:.1f}", f"{1000 * ckpt[mode][1]:.1f}",
          f"{1000 * ckpt[mode][0] / step_ms:.2f} steps"] for mode in ("async", "sync")])
    return (
        "## Training loop\n\n"
        f"Model {pipe['model']}, batch {pipe['batch']}, {pipe['steps']} steps per run, median of {pipe['repeats']} "
        "interleaved runs, compilation excluded. Target: input-pipeline overhead under 5%.\n\n"
        f"{pipeline_table}\n\n"
        f"Checkpoint of the full training state ({ckpt['bytes'] / 1e6:.1f} MB: weights, BatchNorm statistics, "
        f"optimizer state) with Orbax, median of 5 saves; one training step takes {step_ms:.1f} ms.\n\n"
        f"{checkpoint_table}\n\n"
        f"Measured on {report.machine_description()} in {minutes:.1f} min.\n"
    )


if __name__ == "__main__":
    print(markdown())
