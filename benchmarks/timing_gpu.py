"""What the kernel GPU benchmarks share: timing a compiled call, the roofline fraction of a run, the error between
two results, the markdown table and the goal lines. Imports only jax and numpy (a bare accelerator machine runs
the benchmarks without the rest of the project).

roofline % = max(bytes / peak bandwidth, flops / peak FLOP rate) / time: how close a run is to the bound of the
card, by default an H100 SXM (3.35 TB/s HBM3, ~990 dense bf16 TFLOP/s); an H200 has 4.8 TB/s and the same FLOPs
(--peak_tbps). Each benchmark counts its own bytes and FLOPs, independently of the implementation.
"""

import dataclasses
import statistics
import time

import jax
import numpy as np


def add_roofline_args(parser) -> None:
    parser.add_argument("--peak_tbps", type=float, default=3.35, help="peak memory bandwidth, TB/s (H100 SXM)")
    parser.add_argument("--peak_tflops", type=float, default=990.0, help="peak dense TFLOP/s (H100 SXM, bf16)")


def measure(fn, args, repeats: int) -> tuple[float, object]:
    """(median seconds, result) of the jitted `fn(*args)` after compiling and one warm-up call."""
    compiled = fn.lower(*args).compile()
    result = jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def max_error(a, b) -> float:
    """Largest |a - b| over matching arrays of two results (pytrees of one structure)."""
    pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x, np.float32) - np.asarray(y, np.float32)))) for x, y in pairs)


@dataclasses.dataclass(frozen=True)
class Roofline:
    peak_tbps: float
    peak_tflops: float

    def bound_seconds(self, bytes_: float, flops: float) -> float:
        """The time the binding resource (HBM bytes or FLOPs) needs at its peak."""
        return max(bytes_ / (self.peak_tbps * 1e12), flops / (self.peak_tflops * 1e12))

    def percent(self, bytes_: float, flops: float, seconds: float) -> float:
        return 100 * self.bound_seconds(bytes_, flops) / seconds

    def binding(self, bytes_: float, flops: float) -> str:
        return "memory" if bytes_ / (self.peak_tbps * 1e12) >= flops / (self.peak_tflops * 1e12) else "compute"


def rate_cells(roofline: Roofline, bytes_: float, flops: float, seconds: float) -> list[str]:
    """ms, GB/s, TFLOP/s and roofline % of one timed run, formatted for a table."""
    return [
        f"{seconds * 1e3:.3f}",
        f"{bytes_ / seconds / 1e9:.4g}",
        f"{flops / seconds / 1e12:.3g}",
        f"{roofline.percent(bytes_, flops, seconds):.3g}",
    ]


def failed_cells(error: Exception, width: int) -> list[str]:
    """A failing call is a result to report: its first message line in the first cell, the rest empty."""
    message = (str(error).strip().splitlines() or [type(error).__name__])[0][:100]
    return [f"failed: {message.replace('|', '/')}"] + [""] * (width - 1)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def machine_line() -> str:
    device = jax.devices()[0]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    count = len(jax.devices())
    return f"- machine: {device.device_kind} ({device.platform}), JAX {jax.__version__}, {count} device(s), {when}"


def goal_line(passed: bool | None, goal: str, detail: str) -> str:
    """'GOAL PASS|FAIL|UNTESTED: goal (detail)': one line a reader (or grep) finds in the output."""
    verdict = {True: "PASS", False: "FAIL", None: "UNTESTED"}[passed]
    return f"GOAL {verdict}: {goal} ({detail})"
