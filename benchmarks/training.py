"""Training-loop overheads, measured side by side in one process.

1. Input pipeline: steps/s of the `make run` model fed by the real tf.data pipeline over offline
   Fashion-MNIST vs the same model fed from batches already in memory (numpy arrays, no tf.data).
   Overhead = 1 - pipeline / in-memory. The two are interleaved (A B A B ...) so machine noise hits both.
2. Checkpointing: the time an Orbax save of the full training state adds to the loop (async: the loop waits
   only while arrays are copied off the devices; sync: until the checkpoint is on disk), in training steps.
"""

import itertools
import statistics
import tempfile
import time

from flax import nnx

from common import report
from common.train import classification, loop, optim
from common.train.metrics import read_metrics
from papers.swish import config as swish_config
from papers.swish import model as swish_model


def _timed_run(config, dataset, make_iterator) -> float:
    """Steps/s over the logged windows after the first (which holds compilation)."""
    task = loop.TrainTask(
        model=swish_model.build_model(config, dataset.input_shape, dataset.num_classes, nnx.Rngs(0)),
        loss_fn=classification.cross_entropy_loss,
        make_train_iterator=make_iterator,
    )
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
    return {
        "model": f"{config.model.name} ({config.model.activation})",
        "dataset": config.dataset.name,
        "batch": config.dataset.batch_size,
        "steps": num_steps,
        "repeats": repeats,
        "pipeline": pipeline,
        "memory": memory,
        "overhead": 1 - pipeline / memory,
    }


def checkpoint_cost(num_steps: int = 60, every: int = 10) -> dict:
    """Steps/s with no checkpoint, an async save every `every` steps, and a synchronous one; same runs, interleaved."""
    config = swish_config.get_config("default")
    config.train.update(num_steps=num_steps, log_every=every, max_to_keep=2)
    dataset = classification.load_dataset(config)
    in_memory = list(itertools.islice(dataset.make_train_iterator(0), 20))

    def from_memory(start_step):
        return itertools.islice(itertools.cycle(in_memory), start_step % len(in_memory), None)

    settings = {"none": (10**9, True), "async": (every, True), "sync": (every, False)}
    rates = {name: [] for name in settings}
    for _ in range(2):
        for name, (checkpoint_every, async_save) in settings.items():
            config.train.update(checkpoint_every=checkpoint_every, async_checkpoints=async_save)
            rates[name].append(_timed_run(config, dataset, from_memory))
    step_time = {name: 1 / statistics.median(values) for name, values in rates.items()}
    return {
        "every": every,
        "step": step_time["none"],
        **{name: (step_time[name] - step_time["none"]) * every for name in ("async", "sync")},
    }


def render(pipe: dict, ckpt: dict, minutes: float) -> str:
    """The markdown section for the results of input_pipeline() and checkpoint_cost()."""
    pipeline_table = report.markdown_table(
        ["feed", "steps/s", "input-pipeline overhead"],
        [
            ["tf.data pipeline over real Fashion-MNIST", f"{pipe['pipeline']:.2f}", f"{100 * pipe['overhead']:.1f}%"],
            ["same batches from in-memory arrays", f"{pipe['memory']:.2f}", "(reference)"],
        ],
    )
    step_ms = 1000 * ckpt["step"]
    checkpoint_table = report.markdown_table(
        ["save", "time one save adds to the loop (ms)", "in training steps"],
        [[mode, f"{1000 * ckpt[mode]:.1f}", f"{1000 * ckpt[mode] / step_ms:.2f}"] for mode in ("async", "sync")],
    )
    return (
        "## Training loop\n\n"
        f"Model {pipe['model']}, batch {pipe['batch']}, {pipe['steps']} steps per run, median of {pipe['repeats']} "
        "interleaved runs, compilation excluded. Target: input-pipeline overhead under 5%.\n\n"
        f"{pipeline_table}\n\n"
        "Checkpoint cost: the same model fed from memory, with no checkpoint vs an Orbax save of the full training "
        f"state (weights, BatchNorm statistics, optimizer state) every {ckpt['every']} steps, asynchronous (the loop "
        "waits only while arrays are copied off the devices) or synchronous (until the checkpoint is on disk); the "
        f"difference in step time, times {ckpt['every']}, is what one save adds. One step takes {step_ms:.1f} ms.\n\n"
        f"{checkpoint_table}\n\n"
        f"Measured by `make bench` on {report.machine_description()} in {minutes:.1f} min.\n"
    )


def markdown() -> str:
    started = time.time()
    pipe = input_pipeline()
    ckpt = checkpoint_cost()
    return render(pipe, ckpt, (time.time() - started) / 60)


if __name__ == "__main__":
    print(markdown())
