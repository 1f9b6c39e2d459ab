"""The runner behind every script of a paper: flags, environment, workdir, and the hand-off to the paper.

A paper's main.py is three lines: `app.define_flags(__file__)`, then `app.run(app.main_for(train))`, where
`train` is the paper's module with
  train_and_evaluate(config, workdir) -> dict of final metrics
  build_for_dry_run(config) -> (model, input_shape)   # input_shape without the batch axis
  check_config(config) (optional) -> raises a UserError for a field read late (generation options)
Flags:
  --config=papers/<paper>/config.py[:variant]  ml_collections config, locked: a mistyped --config.key fails
  --workdir=DIR              checkpoints, metrics.jsonl, TensorBoard; default workdirs/<paper>/<variant>
  --dry_run                  build the model, print `params: N` and `flops: F`, exit
  --allow_config_change=a.b,c.d  resume a workdir although these fields differ from its config.json
  --verbose                  show the traceback of a user error too
Every script starts with `app.run(main)`: a user error (a misspelt config field, a bad value, an unknown name,
missing data, a busy or mismatched workdir: `common.errors.UserError`) prints one line on stderr naming the bad
value and the valid choices, and exits non-zero; a bug keeps its traceback. The config is checked
(`check_config`: positive counts and intervals, batch sizes the devices divide) before anything is written; a
workdir is locked while a run uses it, and a rerun resumes only with the config the workdir was started with
(fields that only change the length or the logging of a run, `RESUMABLE_CHANGES`, may differ).
Any other script of a paper that takes a config (a search, generation from a checkpoint) defines the same flags
with `define_flags(__file__)` (or the paper's name) and starts its absl main with `run = app.start(argv)`, which
hands back the config and the workdir. Scripts without a config (benchmarks, sweep reports) start with
`app.prepare(argv)`.
"""

import dataclasses
import difflib
import fcntl
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType

from absl import app as absl_app
from absl import flags
from ml_collections import ConfigDict, config_flags

from common.errors import ConfigError, UserError, WorkdirError
from common.registry import lookup

FLAGS = flags.FLAGS
flags.DEFINE_bool("verbose", False, "Show the traceback of a user error (a bad flag or config value) too.")

# Config fields a resumed run may change: how long it runs, how often it logs, evaluates and saves, and what it
# does with the trained model (generation, decoding).
RESUMABLE_CHANGES = (
    "generate",
    "decode",
    "train.num_steps",
    "train.log_every",
    "train.eval_every",
    "train.interim_eval_batches",
    "train.checkpoint_every",
    "train.max_to_keep",
    "train.async_checkpoints",
    "dataset.data_dir",
)
# Integer fields (any section) that must be positive, and those that may also be 0 (off).
POSITIVE_FIELDS = (
    "num_steps",
    "log_every",
    "checkpoint_every",
    "batch_size",
    "eval_batch_size",
    "iterations",
    "total_updates",
    "num_actors",
)
NON_NEGATIVE_FIELDS = ("eval_every", "interim_eval_batches", "warmup_steps", "max_to_keep")
# Full keys that may be 0 although their field name is in POSITIVE_FIELDS: the RL runner's checkpoint interval
# (0: no checkpoints, common/rl/config.py), unlike the supervised loop's, which also places the resume points.
NON_NEGATIVE_KEYS = ("run.checkpoint_every",)


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
    flags.DEFINE_list(
        "allow_config_change", [], "Config fields (a.b,c.d) that may differ from the config a resumed workdir holds."
    )


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
        raise ConfigError(f"unexpected positional arguments: {argv[1:]}; flags take the form --name=value")
    if not FLAGS["verbosity"].present:
        logging.getLogger("absl").setLevel(logging.WARNING)
        logging.getLogger().setLevel(logging.WARNING)
    prepare_environment()


def start(argv: Sequence[str], *, write_config: bool = True, check: Callable[[ConfigDict], None] | None = None) -> Run:
    """`prepare(argv)`, then the config of --config (checked) and the workdir (--workdir, or `default_workdir`).

    write_config: the script trains into the workdir. Process 0 (hosts share the directory) locks it for the
    life of the process, refuses to resume a run whose config differs (see `RESUMABLE_CHANGES`), and only then
    writes config.json. check(config): the paper's own checks (raising a UserError), run before anything else."""
    spec = config_flags.get_config_filename(FLAGS["config"])
    try:
        config = FLAGS.config
        config.keys()  # a config file that failed to load raises here
    except OSError as error:  # config_flags defers a missing config file's error to the first access
        reason = str(error).strip().splitlines()[-1].strip()
        raise ConfigError(f"--config={spec}: {reason}; {_config_file_hint()}") from None
    check_config(config)
    if check is not None:
        check(config)  # the paper's own checks: fields it would otherwise read only after training
    prepare(argv)
    run = Run(config, spec, FLAGS.workdir or default_workdir(spec))
    if write_config:
        allowed = (*RESUMABLE_CHANGES, *(FLAGS.allow_config_change if "allow_config_change" in FLAGS else ()))
        take_workdir(run.workdir, run.config, allowed)
    return run


def run(main: Callable[[list[str]], None]) -> None:
    """absl.app.run(main) with one error path: a bad flag or config field, or a `UserError` from `main`, prints
    `error: <message>` on stderr and exits with the error's code (2 for a usage error); --verbose shows the
    traceback too."""

    def guarded_main(argv):
        from common.train.loop import TrainingStopped

        try:
            main(argv)
        except UserError as error:
            _exit_with(error, getattr(error, "exit_code", 2))
        except TrainingStopped as stopped:  # saved: the shell's convention for a signal
            print(stopped, flush=True)
            sys.exit(128 + signal.Signals[stopped.signal_name].value)

    absl_app.run(guarded_main, flags_parser=_parse_flags)


def _exit_with(error: BaseException, code: int) -> None:
    if "--verbose" in sys.argv or (FLAGS.is_parsed() and FLAGS.verbose):
        traceback.print_exception(error)
    message = str(error).strip() or type(error).__name__
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _parse_flags(argv: list[str]) -> list[str]:
    """FLAGS(argv), with every mistake in the flags turned into a one-line error."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        _exit_with(_config_file_error(error) or error, 2)
    except (AttributeError, KeyError):  # a --config.path override that names no field
        _exit_with(_unknown_field_error(argv), 2)
    return []


def _config_file_error(error: flags.Error) -> UserError | None:
    """The last line of a config file's traceback (the real error, e.g. an unknown variant), when it is one."""
    text = str(error)
    if "Error whilst parsing config file" not in text:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1]
    return ConfigError(f"--config: {last.split(': ', 1)[-1]}")


def _config_file_hint() -> str:
    return f"this script's config file is {FLAGS['config'].default_as_str.strip(chr(39))}"


def _unknown_field_error(argv: Sequence[str]) -> ConfigError:
    """Which --config.a.b=value names no field, with the close matches and the section's fields."""
    overrides = [arg for arg in argv[1:] if arg.startswith("--config.")]
    specs = [arg.partition("=")[2] for arg in argv[1:] if arg.startswith("--config=")]
    config = _load_config(specs[-1] if specs else FLAGS["config"].default_as_str.strip("'\""))
    for arg in overrides:
        path = arg[len("--config.") :].partition("=")[0]
        section, where = config, "config"
        for name in path.split("."):
            if not isinstance(section, ConfigDict) or name not in section:
                if not isinstance(section, ConfigDict):
                    return ConfigError(f"--config.{path}: {where} is a value, not a section")
                fields = sorted(section.keys())
                close = difflib.get_close_matches(name, fields, n=3)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                return ConfigError(
                    f"--config.{path}: {where} has no field {name!r}; {hint}its fields: {', '.join(fields)}"
                )
            section, where = section[name], f"{where}.{name}" if where != "config" else name
    return ConfigError(f"a --config override names no field: {' '.join(overrides)}")


def _load_config(spec: str) -> ConfigDict:
    """The config a `path.py[:variant]` spec names, loaded the way config_flags does (for error messages)."""
    import importlib.util

    path, _, variant = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_config_for_error", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()


def check_config(config: ConfigDict) -> None:
    """Fails with ConfigError, naming the field and its valid range, on a count or interval that cannot work
    (`POSITIVE_FIELDS` > 0, `NON_NEGATIVE_FIELDS` >= 0, in any section; `NON_NEGATIVE_KEYS` >= 0) or a batch
    the devices cannot share."""
    import jax

    def walk(section: ConfigDict, prefix: str):
        for name, value in section.items():
            key = f"{prefix}{name}"
            if isinstance(value, ConfigDict):
                walk(value, f"{key}.")
            elif isinstance(value, bool) or not isinstance(value, int):
                continue
            elif name in POSITIVE_FIELDS and key not in NON_NEGATIVE_KEYS and value <= 0:
                raise ConfigError(f"{key}={value}: must be a positive integer")
            elif (name in NON_NEGATIVE_FIELDS or key in NON_NEGATIVE_KEYS) and value < 0:
                raise ConfigError(f"{key}={value}: must be >= 0 (0 turns it off)")

    walk(config, "")
    batch_size = config.get("dataset", {}).get("batch_size") if isinstance(config.get("dataset"), ConfigDict) else None
    if isinstance(batch_size, int) and batch_size % jax.device_count():
        raise ConfigError(
            f"dataset.batch_size={batch_size} is not divisible by the {jax.device_count()} devices; "
            f"choose a multiple of {jax.device_count()}"
        )


def take_workdir(workdir: str, config: ConfigDict, allowed: Sequence[str] = RESUMABLE_CHANGES) -> None:
    """Makes `workdir` this run's before it trains there: creates it, and on process 0 (hosts share the directory)
    locks it (until `unlock_workdir` or the process's end), refuses to resume a run whose config differs outside
    `allowed` (see `check_resumable`), and only then writes config.json."""
    import jax

    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise WorkdirError(f"cannot create workdir {workdir}: {error.strerror}; pass another --workdir") from None
    if jax.process_index() == 0:
        try:
            lock_workdir(workdir)
            check_resumable(workdir, config, allowed)
            with open(os.path.join(workdir, "config.json"), "w") as f:
                f.write(config.to_json_best_effort(indent=2))
        except PermissionError as error:
            raise WorkdirError(f"cannot write in workdir {workdir}: {error.strerror}; pass another --workdir") from None


_WORKDIR_LOCKS: dict[str, object] = {}  # held open until unlock_workdir or the process's end


def lock_workdir(workdir: str) -> None:
    """Takes `<workdir>/.lock` for this process (until `unlock_workdir` or its end), or fails naming the process
    that holds it."""
    path = os.path.join(os.path.abspath(workdir), ".lock")
    if path in _WORKDIR_LOCKS:
        return
    lock_file = open(path, "a+")  # noqa: SIM115 (held until unlock_workdir or the process's end)
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "another process"
        lock_file.close()
        raise WorkdirError(
            f"workdir {workdir} is in use by {holder}; wait for that run to end, or pass another --workdir"
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f"process {os.getpid()}")
    lock_file.flush()
    _WORKDIR_LOCKS[path] = lock_file


def unlock_workdir(workdir: str) -> None:
    """Lets go of `<workdir>/.lock` if this process holds it: a process that runs one trial after another (a
    reused Ray worker) must not keep a finished run's workdir."""
    lock_file = _WORKDIR_LOCKS.pop(os.path.join(os.path.abspath(workdir), ".lock"), None)
    if lock_file is None:
        return
    lock_file.seek(0)
    lock_file.truncate()  # no stale "process N" for whoever reads it next
    lock_file.flush()
    fcntl.flock(lock_file, fcntl.LOCK_UN)
    lock_file.close()


def check_resumable(workdir: str, config: ConfigDict, allowed: Sequence[str] = RESUMABLE_CHANGES) -> None:
    """Fails when `workdir` holds a started run (anything beside config.json) whose config.json differs from
    `config` in a field outside `allowed` (dotted paths; a section's path allows all of its fields)."""
    path = os.path.join(workdir, "config.json")
    started = [name for name in os.listdir(workdir) if name not in ("config.json", ".lock")]
    if not started or not os.path.exists(path):
        return
    try:
        with open(path) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return  # unreadable (an earlier crash mid-write): nothing to compare against
    current = json.loads(config.to_json_best_effort())
    differing = [
        (key, old, new)
        for key, old, new in _differences(stored, current)
        if not any(key == field or key.startswith(field + ".") for field in allowed)
    ]
    if differing:
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in differing[:5])
        more = f" (and {len(differing) - 5} more)" if len(differing) > 5 else ""
        raise WorkdirError(
            f"workdir {workdir} holds a run with a different config: {shown}{more}. Pass another --workdir, or "
            f"--allow_config_change={','.join(key for key, _, _ in differing)} to resume it anyway"
        )


def _differences(old, new, prefix: str = "") -> list[tuple[str, object, object]]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}.")
        return found
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def printed_metrics(final: dict) -> dict:
    """A run's final metrics as its main.py prints them on its last line: rounded to 6 decimals, so a sweep's
    trials, its report and a rerun of one trial by hand agree."""
    return {name: round(value, 6) for name, value in final.items()}


def main_for(paper: ModuleType):
    """The absl main function for `paper` (its train module)."""

    def main(argv):
        run = start(argv, write_config=not FLAGS.dry_run, check=getattr(paper, "check_config", None))
        config, workdir = run.config, run.workdir
        if FLAGS.dry_run:
            print_model_size(*paper.build_for_dry_run(config))
            return
        print(f"workdir: {workdir}", flush=True)
        logging.info("config:\n%s", config)
        final = paper.train_and_evaluate(config, workdir)  # a signal raises TrainingStopped: app.run exits 128+n
        print(json.dumps({"workdir": workdir, **printed_metrics(final)}))

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
