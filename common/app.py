"""The runner behind every script of a paper: flags, environment, workdir, and the hand-off to the paper.

A paper's main.py is three lines: `app.define_flags(__file__)`, then `absl.app.run(app.main_for(train))`, where
`train` is the paper's module with
  train_and_evaluate(config, workdir) -> dict of final metrics
  build_for_dry_run(config) -> (model, input_shape)   # input_shape without the batch axis
Flags:
  --config=papers/<paper>/config.py[:variant]  ml_collections config, locked: a mistyped --config.key fails
  --workdir=DIR              checkpoints, metrics.jsonl, TensorBoard; default workdirs/<paper>/<variant>
  --dry_run                  build the model, print `params: N` and `flops: F`, exit
Any other script of a paper that takes a config (a search, generation from a checkpoint) defines the same flags
with `define_flags(__file__)` (or the paper's name) and starts its absl main with `run = app.start(argv)`, which
hands back the config and the workdir. Scripts without a config (benchmarks, sweep reports) start with
`app.prepare(argv)`.
"""

import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from absl import flags
from ml_collections import ConfigDict, config_flags

from common.registry import lookup

FLAGS = flags.FLAGS


PAPERS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "papers")


def paper_name(paper: str) -> str:
    """The paper's folder name, from any file of its folder (a script's `__file__`) or from the name itself."""
    return os.path.basename(os.path.dirname(os.path.abspath(paper))) if paper.endswith(".py") else paper


def paper_config_file(paper: str) -> str:
    """papers/<paper>/config.py from any file of the paper's folder (a script's `__file__`) or the paper's name."""
    name = paper_name(paper)
    configs = {
        folder: path
        for folder in os.listdir(PAPERS_DIR)
        if os.path.isfile(path := os.path.join(PAPERS_DIR, folder, "config.py"))
    }
    return lookup(configs, name, "paper")


def define_flags(paper: str) -> None:
    """Defines --config (defaulting to the paper's config.py), --workdir and --dry_run.

    `paper`: any file of the paper's folder (a script passes its `__file__`) or the paper's name.
    """
    default_config = paper_config_file(paper)
    config_flags.DEFINE_config_file("config", default_config, "Experiment config: path[:variant].", lock_config=True)
    flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go; a rerun resumes from here.")
    flags.DEFINE_bool("dry_run", False, "Build the model, print its parameter and FLOP counts, and exit.")


@dataclasses.dataclass(frozen=True)
class Run:
    """What a script's main works from, once `start` has read the flags."""

    config: ConfigDict
    config_spec: str  # the --config value, "papers/<paper>/config.py[:variant]"
    workdir: str


def prepare(argv: Sequence[str]) -> None:
    """The start of every absl main: rejects positional arguments, quiets absl's INFO logs unless --verbosity
    is given (Orbax writes a dozen per save, which drown the progress bar), prepares the environment."""
    if len(argv) > 1:
        raise ValueError(f"unexpected positional arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.getLogger("absl").setLevel(logging.WARNING)
    prepare_environment()


def start(argv: Sequence[str], *, write_config: bool = True) -> Run:
    """`prepare(argv)`, then the config of --config and the workdir (--workdir, or `default_workdir`); with
    `write_config`, creates the workdir and, on process 0 only (hosts share the directory), writes config.json."""
    prepare(argv)
    spec = config_flags.get_config_filename(FLAGS["config"])
    run = Run(FLAGS.config, spec, FLAGS.workdir or default_workdir(spec))
    if write_config:
        import jax

        os.makedirs(run.workdir, exist_ok=True)
        if jax.process_index() == 0:
            with open(os.path.join(run.workdir, "config.json"), "w") as f:
                f.write(run.config.to_json_best_effort(indent=2))
    return run


def main_for(paper: ModuleType):
    """The absl main function for `paper` (its train module)."""

    def main(argv):
        run = start(argv, write_config=not FLAGS.dry_run)
        config, workdir = run.config, run.workdir
        if FLAGS.dry_run:
            print_model_size(*paper.build_for_dry_run(config))
            return
        print(f"workdir: {workdir}", flush=True)
        logging.info("config:\n%s", config)
        from common.train.loop import TrainingStopped

        try:
            final = paper.train_and_evaluate(config, workdir)
        except TrainingStopped as stopped:
            print(stopped, flush=True)
            sys.exit(128 + signal.Signals[stopped.signal_name].value)  # the shell's convention for a signal
        print(json.dumps({"workdir": workdir, **{k: round(v, 6) for k, v in final.items()}}))

    return main


def prepare_environment() -> None:
    """Keeps TensorFlow (data only) off accelerators and joins a multi-host job when launched as one."""
    import jax

    from common.data import core

    core.hide_accelerators_from_tensorflow()
    if _launched_multihost():
        jax.distributed.initialize()
    logging.info(
        "JAX %s on %d %s device(s), process %d of %d",
        jax.__version__,
        jax.device_count(),
        jax.default_backend(),
        jax.process_index(),
        jax.process_count(),
    )


def _launched_multihost() -> bool:
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return True
    return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def default_workdir(config_spec: str) -> str:
    """workdirs/<paper>/<variant> from a `papers/<paper>/config.py[:variant]` spec."""
    path, _, variant = config_spec.partition(":")
    paper = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return os.path.join("workdirs", paper, variant or "default")


def print_model_size(model, input_shape: tuple[int, ...]) -> None:
    """Prints `params: N` and `flops: F` (one forward pass, batch 1, a multiply-add counted as 2)."""
    from common.nn import counting

    print(f"params: {counting.count_params(model)}")
    print(f"flops: {counting.count_model_flops(model, input_shape)}")
    sys.stdout.flush()


def abstract_image_model(
    build_model: Callable, config: ConfigDict, **model_fields
) -> tuple[object, tuple[int, int, int]]:
    """An image classifier built abstractly (no weights allocated) for `--dry_run`'s counts, with `model_fields`
    laid over config.model (say the implementation whose FLOPs are the ones the paper counts).

    build_model(config, input_shape, num_classes, rngs) is the paper's; returns (model, input_shape).
    """
    from flax import nnx

    from common.data import images

    input_shape, num_classes = images.dataset_shapes(config.dataset.name, config.dataset.get("image_size"))
    if model_fields:
        config = config.copy_and_resolve_references()
        with config.unlocked():
            config.model.update(model_fields)
    return nnx.eval_shape(lambda: build_model(config, input_shape, num_classes, nnx.Rngs(config.seed))), input_shape
