"""Orbax checkpoints for every paper: one format, saved on a period and on SIGTERM/SIGINT, restored on start.

The saved item is any pytree of arrays (the loop saves `nnx.State` of the optimizer and the EMA weights).
Restoring needs an abstract target of the same structure so arrays come back with their shapes, dtypes and
shardings.
"""

import os
import signal
import threading

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """A CheckpointManager under `<workdir>/checkpoints` with the save policy the trainer needs."""

    def __init__(self, workdir: str, *, save_every: int, max_to_keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(save_every, 1),
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def maybe_save(self, step: int, state, *, force: bool = False) -> bool:
        """Saves if `step` is on the save period (or `force`); async: returns before the write is done."""
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, abstract_state, step: int | None = None):
        """Restores `step` (default: latest) into the structure, shapes and shardings of `abstract_state`."""
        step = self.latest_step() if step is None else step
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
        return self._manager.restore(step, args=ocp.args.StandardRestore(target))

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


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
