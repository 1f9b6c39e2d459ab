"""Orbax checkpoints for every paper: one format of named parts, saved on a period and on SIGTERM/SIGINT.

A checkpoint is a set of named parts, each its own Orbax item under `<workdir>/checkpoints/<step>/<name>`:
the training loop writes `params`, `model_state` (BatchNorm statistics and other non-trained variables),
`opt_state`, `ema` and `step`; a task may add parts of its own (the replay runners save `learner` and
`counters`). Because parts load one by one, weights come back without the optimizer that trained them
(`restore_weights`), and a new run can start from a subtree of another run's weights (`warm_start`).

nnx.State values are stored as plain nested dicts (`params/conv1/kernel`), so a checkpoint reads the same
whatever Flax version wrote it. A part with no arrays at all (the step, a path) is stored as JSON.
Every restore checks the saved leaves against the target and names any missing, unexpected or mis-shaped one.
"""

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from common.errors import UserError

T = TypeVar("T")
MAX_LISTED = 8  # leaves named per kind in a mismatch error; the rest are counted


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint's saved leaves do not fit the model or state they are loaded into."""


class Checkpointer:
    """A CheckpointManager under `<workdir>/checkpoints` with the save policy the trainer needs."""

    def __init__(
        self, workdir: str, *, save_every: int = 1, max_to_keep: int = 3, async_save: bool = True, create: bool = True
    ):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        if not create and not os.path.isdir(self.directory):
            raise FileNotFoundError(f"no checkpoint in {self.directory}: train there first")
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(save_every, 1),
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            create=create,
        )
        if create and jax.process_index() == 0:
            _remove_unfinished_saves(self.directory)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def resolve_step(self, step: int | None = None) -> int:
        """`step`, or the latest one when None; FileNotFoundError when there is none."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}: train there first")
        return step

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def part_names(self, step: int) -> list[str]:
        """The parts saved at `step`."""
        path = epath.Path(self.directory) / str(step)
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("_"))

    def maybe_save(self, step: int, parts: Mapping[str, object], *, force: bool = False) -> bool:
        """Saves the named `parts` if `step` is on the save period (or `force`); async: returns before the write
        is done. Empty parts (a model without BatchNorm has no model_state) are left out."""
        args = {}
        for name, value in parts.items():
            if _is_json_part(value):
                args[name] = ocp.args.JsonSave(value)
            elif jax.tree_util.tree_leaves(value):
                args[name] = ocp.args.StandardSave(_to_pure(value))
        return self._manager.save(step, args=ocp.args.Composite(**args), force=force)

    def restore(self, parts: Mapping[str, object], step: int | None = None) -> dict[str, object]:
        """Restores the named `parts` of `step` (default: latest) into the structure, shapes and shardings of the
        given targets (arrays or abstract arrays; nnx.State comes back as nnx.State). Parts not asked for stay on
        disk; a target part that is empty is returned as it is."""
        step = self.resolve_step(step)
        saved = self.part_names(step)
        missing = [name for name, target in parts.items() if name not in saved and jax.tree_util.tree_leaves(target)]
        if missing:
            raise CheckpointMismatchError(
                f"checkpoint step {step} in {self.directory} has no part(s) {', '.join(missing)}; "
                f"it holds: {', '.join(saved) or 'nothing'}. Was it written by a different program?"
            )
        args, restored, problems = {}, {}, []
        for name, target in parts.items():
            if _is_json_part(target):
                args[name] = ocp.args.JsonRestore()
            elif not jax.tree_util.tree_leaves(target):
                restored[name] = target
            else:
                pure = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _to_pure(target))
                problems += _leaf_problems(name, _leaf_shapes(self._metadata(step, name)), _leaf_shapes(pure))
                args[name] = ocp.args.StandardRestore(pure)
        if problems:
            raise CheckpointMismatchError(_mismatch_message(problems, step, self.directory))
        if args:
            loaded = self._manager.restore(step, args=ocp.args.Composite(**args))
            for name in args:
                restored[name] = _from_pure(parts[name], loaded[name])
        return restored

    def restore_newest_readable(self, parts: Mapping[str, object]) -> tuple[int, dict[str, object]]:
        """`restore(parts)` from the newest step that reads back (see `open_newest_readable`)."""
        return self.open_newest_readable(lambda step: self.restore(parts, step))

    def open_newest_readable(self, open_step: Callable[[int], T]) -> tuple[int, T]:
        """(step, open_step(step)) for the newest step that opens, newest first: a damaged step (a truncated or
        corrupted file, missing metadata, no part at all) is skipped with a warning naming it and why, and deleted
        with every later one once an older step opens (the resumed run writes them again). A step that reads but
        does not fit (CheckpointMismatchError) is not damage and stops the search."""
        skipped = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                if not self.part_names(step):
                    raise FileNotFoundError("the step holds no saved part")  # killed before any part was written
                opened = open_step(step)
                self.delete_after(step)
                return step, opened
            except CheckpointMismatchError:
                raise
            except Exception as error:  # noqa: BLE001 (any read failure of a damaged step)
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
                skipped.append(step)
                message = f"checkpoint step {step} cannot be read ({reason}); trying an older one ({self.directory})"
                print(f"warning: {message}", file=sys.stderr, flush=True)
        raise CheckpointMismatchError(
            f"no checkpoint in {self.directory} can be read (damaged steps: {', '.join(map(str, skipped))}); "
            "move that directory away to start afresh"
        )

    def delete_after(self, step: int) -> None:
        """Deletes every saved step after `step` (on process 0; Orbax coordinates the hosts)."""
        for later in self.all_steps():
            if later > step:
                self._manager.delete(later)

    def load_raw(self, name: str, step: int | None = None) -> dict:
        """One saved part as a nested dict of numpy arrays, without a target (for warm starts)."""
        step = self.resolve_step(step)
        if name not in self.part_names(step):
            raise CheckpointMismatchError(
                f"checkpoint step {step} in {self.directory} has no part {name!r}; "
                f"it holds: {', '.join(self.part_names(step)) or 'nothing'}"
            )
        metadata = self._metadata(step, name)
        target = jax.tree_util.tree_map(
            lambda m: np.zeros(m.shape, m.dtype), metadata, is_leaf=lambda x: hasattr(x, "shape")
        )
        loaded = self._manager.restore(step, args=ocp.args.Composite(**{name: ocp.args.StandardRestore(target)}))
        return jax.tree_util.tree_map(np.asarray, loaded[name])

    def _metadata(self, step: int, name: str):
        metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(self.directory) / str(step) / name)
        return getattr(metadata, "tree", metadata)

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _remove_unfinished_saves(directory: str) -> None:
    """Deletes the temporary directories of saves that never finished (a process killed mid-save)."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if ".orbax-checkpoint-tmp-" in name:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def restore_weights(workdir: str, model: nnx.Module, *, step: int | None = None, ema: bool = False) -> int:
    """Loads the weights (and BatchNorm statistics) of a checkpoint `train` wrote in `workdir` into `model`, in
    place, left in eval mode; returns the step. No optimizer is needed. ema: load the EMA weights instead of
    the raw ones (the run must have trained with ema_decay > 0)."""
    _, params, model_state = nnx.split(model, nnx.Param, ...)
    parts = {"ema" if ema else "params": params, "model_state": model_state}
    checkpointer = Checkpointer(workdir, create=False)
    try:
        step = checkpointer.resolve_step(step)
        restored = checkpointer.restore(parts, step)
    finally:
        checkpointer.close()
    nnx.update(model, restored["ema" if ema else "params"], restored["model_state"])
    model.eval()
    return step


def parse_mapping(mapping: str) -> list[tuple[str, str]]:
    """'src->dst,src2->dst2' (slash-separated paths, '' for the whole tree) -> [(src, dst), ...]; '' maps the
    whole saved tree onto the whole model."""
    pairs = []
    for item in (mapping or "->").split(","):
        source, arrow, target = item.partition("->")
        if not arrow:
            raise ValueError(f"init_from.mapping item {item!r} is not of the form 'source/path->target/path'")
        pairs.append((source.strip().strip("/"), target.strip().strip("/")))
    return pairs


def warm_start(
    model: nnx.Module, workdir: str, mapping: str = "", *, part: str = "params", step: int | None = None
) -> int:
    """Copies subtrees of another run's saved `part` into `model`'s parameters, in place; returns the step read.

    mapping: 'source/path->target/path' pairs, comma-separated (see `parse_mapping`); each target subtree must
    receive exactly the leaves of its source subtree, with the same shapes: any missing, extra or mis-shaped leaf
    raises `CheckpointMismatchError` naming it. Values are cast to the model's dtypes.
    """
    try:
        checkpointer = Checkpointer(workdir, create=False)
        try:
            step = checkpointer.resolve_step(step)
            source = checkpointer.load_raw(part, step)
        finally:
            checkpointer.close()
    except FileNotFoundError as error:
        raise FileNotFoundError(f"init_from: {error}") from None
    params = nnx.state(model, nnx.Param)
    pure = params.to_pure_dict()
    where = f"{workdir} step {step} part {part!r}"
    for source_path, target_path in parse_mapping(mapping):
        source_tree = _subtree(source, source_path, f"init_from source {where}")
        target_tree = _subtree(pure, target_path, "the model's parameters")
        source_leaves = _flatten(source_tree)
        target_shapes = {path: tuple(np.shape(leaf)) for path, leaf in _flatten(target_tree).items()}
        problems = _leaf_problems(
            f"{source_path or '<root>'} -> {target_path or '<root>'}",
            {path: tuple(np.shape(leaf)) for path, leaf in source_leaves.items()},
            target_shapes,
        )
        if problems:
            raise CheckpointMismatchError("init_from: " + _mismatch_message(problems, step, workdir))
        _assign(target_tree, source_leaves)
    params.replace_by_pure_dict(pure)
    nnx.update(model, params)
    return step


def _is_json_part(value) -> bool:
    """True for a part with no arrays: a number, string or a dict/list of them (the step, a file path)."""
    leaves = jax.tree_util.tree_leaves(value)
    return bool(leaves) and all(isinstance(leaf, int | float | str | bool) for leaf in leaves)


def _is_state(x) -> bool:
    return isinstance(x, nnx.State)


def _to_pure(tree):
    """nnx.State nodes anywhere in `tree` -> plain nested dicts of arrays (the form saved on disk)."""
    return jax.tree_util.tree_map(lambda x: x.to_pure_dict() if _is_state(x) else x, tree, is_leaf=_is_state)


def _from_pure(target, loaded):
    """The inverse of `_to_pure`, with `target` giving back the nnx.State nodes."""

    def back(t, value):
        if _is_state(t):
            state = jax.tree_util.tree_map(lambda x: x, t)
            state.replace_by_pure_dict(value)
            return state
        return value

    return jax.tree_util.tree_map(back, target, loaded, is_leaf=_is_state)


def _path_name(path) -> str:
    names = []
    for key in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(key, attribute):
                names.append(str(getattr(key, attribute)))
                break
    return "/".join(names)


def _leaf_shapes(tree) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {_path_name(path): tuple(leaf.shape) for path, leaf in leaves}


def _flatten(tree) -> dict[str, object]:
    return {_path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def _leaf_problems(name: str, saved: dict[str, tuple], expected: dict[str, tuple]) -> list[str]:
    """What differs between a saved part's leaves and its target's ('path' -> shape each), one line a kind."""
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    misshaped = sorted(
        f"{path} (saved {saved[path]}, expected {expected[path]})"
        for path in set(saved) & set(expected)
        if saved[path] != expected[path]
    )
    problems = []
    if missing:
        problems.append(f"part {name}: missing from the checkpoint: {_listed(missing)}")
    if unexpected:
        problems.append(f"part {name}: in the checkpoint but not in the target: {_listed(unexpected)}")
    if misshaped:
        problems.append(f"part {name}: mis-shaped: {_listed(misshaped)}")
    return problems


def _mismatch_message(problems: list[str], step: int, directory: str) -> str:
    return (
        f"checkpoint step {step} in {directory} does not fit: "
        + "; ".join(problems)
        + ". Was it written by a different model or config?"
    )


def _subtree(tree: dict, path: str, what: str):
    node = tree
    for i, key in enumerate(path.split("/") if path else []):
        children = {str(k): k for k in node} if isinstance(node, dict) else {}
        if key not in children:
            prefix = "/".join(path.split("/")[:i]) or "<root>"
            raise CheckpointMismatchError(
                f"{what} has no {path!r}: {prefix} holds {', '.join(sorted(children)) or 'no subtrees'}"
            )
        node = node[children[key]]
    return node


def _assign(tree: dict, leaves: dict[str, object]) -> None:
    """Writes `leaves` ('a/b/c' -> array) into the nested dict `tree` in place, cast to its leaves' dtypes."""
    for path, value in leaves.items():
        node, keys = tree, path.split("/")
        for key in keys[:-1]:
            node = node[{str(k): k for k in node}[key]]
        last = {str(k): k for k in node}[keys[-1]]
        node[last] = jax.numpy.asarray(value, dtype=node[last].dtype)


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag the training loop polls, so it can save before it exits.

    A second signal of the same kind falls through to the default handler (a user who presses Ctrl-C twice
    means it). Only installs handlers on the main thread; elsewhere it is a flag that nothing sets.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.requested: str | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested is not None:
            self.restore_handlers()
            signal.raise_signal(signum)
            return
        self.requested = signal.Signals(signum).name

    def restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
