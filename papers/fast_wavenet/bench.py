"""Naive vs cached (fast) WaveNet generation speed, measured side by side in one process.

python -m papers.fast_wavenet.bench [--quick] [--json] [--impl xla|pallas|auto] [--repeats N]

Configurations (random weights: speed does not depend on them; seed 0):
  demo_L<n>      (a) the Fast WaveNet demo's plain model: 2 blocks x n layers (dilations 1..2^(n-1)), width 2,
                 128 channels, ReLU, no gating or skips, batch 1; n = 1..14 (receptive field 2^(n+1) - 1).
  wavenet20_b<B> (b) a gated WaveNet: dilations 1..512 twice (20 layers), residual 64, skip 128, width 2,
                 batch 1 and 16 (receptive field 2,047).
Every configuration compiles both generators first (`make_generator`), then times whole compiled generation
loops (sampling included) and keeps the fastest of `repeats` runs. The naive generator reruns the model over the
whole receptive field per sample, so it is timed on few samples (enough for a stable per-sample time: each of
its samples costs the same whatever the step) and the fast one on many; `naive_samples`/`fast_samples` say how
many. Times are wall-clock (samples/s, ms per step, speedup) and process CPU time (cpu_*: the work done, which
other jobs on a shared machine do not inflate). max_abs_logit_diff compares the two on the naive run's steps
(same key, so the same samples are fed).
--quick: a subset that finishes within a minute on CPU. --json: one JSON object per configuration and line.
"""

import dataclasses
import json
import time

import jax
import numpy as np
from absl import flags
from flax import nnx

from common import app, report
from common.nn import wavenet

DEMO_LAYERS = tuple(range(1, 15))
NAIVE_POSITIONS = 2**16  # naive samples per configuration: about this many positions of work, divided by the field
MIN_NAIVE_SAMPLES, MAX_NAIVE_SAMPLES = 2, 256
FAST_SAMPLES = 4000
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    name: str
    activation: str
    num_blocks: int
    layers_per_block: int
    residual_channels: int
    skip_channels: int
    batch: int
    kernel_size: int = 2
    dilations: tuple[int, ...] | None = None  # None: doubling_dilations(num_blocks, layers_per_block)

    def build(self) -> wavenet.WaveNet:
        dilations = self.dilations or wavenet.doubling_dilations(self.num_blocks, self.layers_per_block)
        return wavenet.WaveNet(
            dilations=dilations,
            residual_channels=self.residual_channels,
            skip_channels=self.skip_channels or None,
            kernel_size=self.kernel_size,
            activation=self.activation,
            rngs=nnx.Rngs(0),
        )


def configurations(quick: bool) -> list[BenchConfig]:
    demo = [BenchConfig(f"demo_L{n}", "relu", 2, n, 128, 0, 1) for n in DEMO_LAYERS]
    gated = [BenchConfig(f"wavenet20_b{b}", "gated", 2, 10, 64, 128, b) for b in (1, 16)]
    if quick:
        return [demo[1], demo[5], gated[0]]
    return demo + gated


def naive_samples_for(receptive_field: int, batch: int, quick: bool) -> int:
    budget = NAIVE_POSITIONS // (8 if quick else 1)
    return int(np.clip(budget // (receptive_field * batch), MIN_NAIVE_SAMPLES, MAX_NAIVE_SAMPLES))


def time_generator(run, repeats: int) -> tuple[float, float, tuple]:
    """Fastest wall-clock and fastest process CPU seconds of `repeats` calls of the compiled generator, and the
    last result. CPU time (all threads of this process) is the work done, whatever else shares the machine."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = jax.block_until_ready(run(jax.random.key(0)))
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def measure(config: BenchConfig, *, quick: bool, impl: str, repeats: int) -> dict:
    model = config.build()
    field = model.receptive_field
    naive_samples = naive_samples_for(field, config.batch, quick)
    fast_samples = FAST_SAMPLES // (10 if quick else 1)
    common = {"batch": config.batch, "temperature": 1.0}
    naive = wavenet.make_generator(model, method="naive", num_samples=naive_samples, **common)
    fast = wavenet.make_generator(model, method="fast", num_samples=fast_samples, impl=impl, **common)
    naive_seconds, naive_cpu, (_, naive_logits) = time_generator(naive, 1 if field > 4096 else repeats)
    fast_seconds, fast_cpu, (_, fast_logits) = time_generator(fast, repeats)
    diff = float(np.abs(np.asarray(naive_logits) - np.asarray(fast_logits[:naive_samples])).max())
    naive_rate = config.batch * naive_samples / naive_seconds
    fast_rate = config.batch * fast_samples / fast_seconds
    return {
        "name": config.name,
        "activation": config.activation,
        "num_layers": config.num_blocks * config.layers_per_block,
        "num_blocks": config.num_blocks,
        "layers_per_block": config.layers_per_block,
        "kernel_size": config.kernel_size,
        "residual_channels": config.residual_channels,
        "skip_channels": config.skip_channels,
        "batch": config.batch,
        "receptive_field": field,
        "impl": impl,
        "naive_samples": naive_samples,
        "fast_samples": fast_samples,
        "naive_samples_per_s": naive_rate,
        "fast_samples_per_s": fast_rate,
        "naive_ms_per_step": 1e3 * naive_seconds / naive_samples,
        "fast_ms_per_step": 1e3 * fast_seconds / fast_samples,
        "speedup": fast_rate / naive_rate,
        "naive_cpu_ms_per_step": 1e3 * naive_cpu / naive_samples,
        "fast_cpu_ms_per_step": 1e3 * fast_cpu / fast_samples,
        "cpu_speedup": (naive_cpu / naive_samples) / (fast_cpu / fast_samples),
        "max_abs_logit_diff": diff,
    }


def run(*, quick: bool = False, impl: str = "auto", repeats: int = 3, on_result=None) -> list[dict]:
    """Measures every configuration; on_result(row) is called as each one finishes."""
    rows = []
    for config in configurations(quick):
        row = measure(config, quick=quick, impl=impl, repeats=repeats)
        rows.append(row)
        if on_result is not None:
            on_result(row)
    return rows


def table(rows: list[dict]) -> str:
    header = ["config", "layers", "batch", "receptive field", "naive samples/s", "fast samples/s", "speedup"]
    header += ["naive ms/step", "fast ms/step", "CPU-time speedup", "fast CPU ms/step", "timed naive / fast steps"]
    header += ["max abs logit diff"]
    body = [
        [
            row["name"],
            row["num_layers"],
            row["batch"],
            row["receptive_field"],
            f"{row['naive_samples_per_s']:.1f}",
            f"{row['fast_samples_per_s']:.0f}",
            f"{row['speedup']:.0f}x",
            f"{row['naive_ms_per_step']:.3f}",
            f"{row['fast_ms_per_step']:.4f}",
            f"{row['cpu_speedup']:.0f}x",
            f"{row['fast_cpu_ms_per_step']:.4f}",
            f"{row['naive_samples']} / {row['fast_samples']}",
            f"{row['max_abs_logit_diff']:.1e}",
        ]
        for row in rows
    ]
    return report.markdown_table(header, body)


def define_flags() -> None:
    flags.DEFINE_bool("quick", False, "A small subset, within a minute on CPU.")
    flags.DEFINE_bool("json", False, "One JSON object per configuration and line instead of the table.")
    flags.DEFINE_enum("impl", "auto", ["xla", "pallas", "auto"], "The cached step's implementation.")
    flags.DEFINE_integer("repeats", 3, "Timed runs per generator; the fastest is kept.")


def main(argv) -> None:
    app.prepare(argv)

    def emit(row):
        if FLAGS.json:
            print(json.dumps(row), flush=True)

    rows = run(quick=FLAGS.quick, impl=FLAGS.impl, repeats=FLAGS.repeats, on_result=emit)
    if not FLAGS.json:
        print(table(rows))
        print(f"\n{report.machine_description()}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
