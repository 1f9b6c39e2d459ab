"""The runner behind every paper's `main.py`: flags, environment, workdir, and the hand-off to the paper.

A paper's main.py is three lines: `app.define_flags(__file__)`, then `absl.app.run(app.main_for(train))`, where
`train` is the paper's module with
  train_and_evaluate(config, workdir) -> dict of final metrics
  build_for_dry_run(config) -> (model, input_shape)   # input_shape without the batch axis
Flags:
  --config=papers/<paper>/config.py[:variant]  ml_collections config, locked: a mistyped --config.key fails
  --workdir=DIR              checkpoints, metrics.jsonl, TensorBoard; default workdirs/<paper>/<variant>
  --dry_run                  build the model, print `params: N` and `flops: F`, exit
"""

import json
import logging
import os
import signal
import sys
from types import ModuleType

from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def define_flags(main_file: str) -> None:
    """Defines --config (defaulting to the paper's config.py), --workdir and --dry_run."""
    default_config = os.path.join(os.path.dirname(os.path.abspath(main_file)), "config.py")
    config_flags.DEFINE_config_file("config", default_config, "Experiment config: path[:variant].", lock_config=True)
    flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go; a rerun resumes from here.")
    flags.DEFINE_bool("dry_run", False, "Build the model, print its parameter and FLOP counts, and exit.")


def main_for(paper: ModuleType):
    """The absl main function for `paper` (its train module)."""

    def main(argv):
        if len(argv) > 1:
            raise ValueError(f"unexpected positional arguments: {argv[1:]}")
        if not FLAGS["verbosity"].present:  # library INFO logs (Orbax writes a dozen per save) drown the progress bar
            logging.getLogger("absl").setLevel(logging.WARNING)
        prepare_environment()
        config = FLAGS.config
        if FLAGS.dry_run:
            print_model_size(*paper.build_for_dry_run(config))
            return
        workdir = FLAGS.workdir or default_workdir(config_flags.get_config_filename(FLAGS["config"]))
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
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
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
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
