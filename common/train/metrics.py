"""Metrics go to two places: TensorBoard (to look at) and `<workdir>/metrics.jsonl` (to read from code).

Each `write(step, metrics)` appends one JSON object `{"step": step, name: value, ...}` per call. On restart the
file is trimmed to the rows at or before the restored step, so a resumed run never shows a step twice.
"""

import json
import math
import os
from collections.abc import Mapping

import jax
import numpy as np


class MetricWriter:
    """Writes scalar metrics to TensorBoard event files and a JSON-lines file under `workdir`."""

    def __init__(self, workdir: str, *, resume_step: int = 0, tensorboard: bool = True):
        self._enabled = jax.process_index() == 0  # one writer per job, however many hosts
        self._summary_writer = None
        if not self._enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        _truncate_after(self.jsonl_path, resume_step)
        if tensorboard:
            from flax.metrics.tensorboard import SummaryWriter

            self._summary_writer = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self._enabled:
            return
        row = {"step": int(step)}
        row.update({name: _to_float(value) for name, value in metrics.items()})
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._summary_writer is not None:
            for name, value in row.items():
                if name != "step":
                    self._summary_writer.scalar(name, value, step)

    def flush(self) -> None:
        if self._summary_writer is not None:
            self._summary_writer.flush()

    def close(self) -> None:
        if self._summary_writer is not None:
            self._summary_writer.close()


def read_metrics(workdir_or_path: str) -> list[dict]:
    """All rows of a JSON-lines file, in order; given a run's workdir, its metrics.jsonl. A torn last line (the
    process died mid-write) is left out; a damaged line before it is an error."""
    path = workdir_or_path
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if number < len(lines):
                raise ValueError(f"{path} line {number} is not JSON: {line[:80]!r}") from None
    return rows


def _to_float(value) -> float | None:
    value = float(np.asarray(value))
    return value if math.isfinite(value) else None


def _truncate_after(path: str, step: int) -> None:
    if not os.path.exists(path):
        return
    kept = [row for row in read_metrics(path) if row["step"] <= step]
    with open(path, "w") as f:  # also drops a torn last line
        f.writelines(json.dumps(row) + "\n" for row in kept)
