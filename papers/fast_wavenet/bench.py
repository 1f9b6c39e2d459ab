"""Naive vs cached (fast) WaveNet generation speed, measured side by side in one process.

python -m papers.fast_wavenet.bench [--quick] [--json] [--impl fused|xla|pallas|auto] [--repeats N]
    [--demo_layers 2,4,6] [--record] [--scaling] [--cores 0]

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
(same key, so the same samples are fed); same_samples: whether both drew the same codes on those steps.
--quick: a subset that finishes within a minute on CPU. --json: one JSON object per configuration and line.
--demo_layers: the demo's n values to time (default 1..14; --quick 2 and 6).

--record: also turn the rows into the paper's claims (`claims`: exactness, and the speed-up growing with the
receptive field) and write them to results/generation.json, which `python -m common.results` gathers into
docs/results.md.

Batch scaling (--scaling, `scaling`): the gated 20-layer WaveNet's cached generation at batch 1, 4, 16, 64 and 256
with each cached step (impl "fused", this repo's CPU default above batch 1, and "xla", the kernels package's stack
step), beside
(1) the rate of plain jnp matmuls of the model's shapes ([B, k*C] x [k*C, 2R] and [B, R] x [R, C+S], chained
like the layers, in one compiled loop) and the fraction of it that generation reaches (model FLOPs per sample x
samples/s), and (2) the PyTorch incremental step users run today (benchmarks/torch_wavenet_incremental.py, run
in its own environment as a subprocess: REPRISE_TORCH_PYTHON, default .venv-torch/bin/python; without it the
torch columns are empty), and (3) a profile of the step (`step_profile`: the products, the cache reads and
writes, and the sampling, each timed alone at that batch). --cores=0 pins this process (and the torch
subprocess) to those cores before JAX starts its thread pools.
"""

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx

from common import app, report, results
from common.errors import ConfigError
from common.nn import cached_conv, wavenet
from kernels.cached_dilated_conv.reference import read_rows

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


QUICK_DEMO_LAYERS = (2, 6)


def configurations(quick: bool, demo_layers: Sequence[int] | None = None) -> list[BenchConfig]:
    """The demo models (n layers per block: `demo_layers`, default DEMO_LAYERS, --quick QUICK_DEMO_LAYERS), then
    the gated 20-layer WaveNet at batch 1 (and 16 unless quick)."""
    layers = demo_layers or (QUICK_DEMO_LAYERS if quick else DEMO_LAYERS)
    for n in layers:
        if not 1 <= n <= max(DEMO_LAYERS):
            raise ConfigError(f"demo layers per block {n} out of range; valid choices: 1..{max(DEMO_LAYERS)}")
    demo = [BenchConfig(f"demo_L{n}", "relu", 2, n, 128, 0, 1) for n in layers]
    gated = [BenchConfig(f"wavenet20_b{b}", "gated", 2, 10, 64, 128, b) for b in ((1,) if quick else (1, 16))]
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
    naive_seconds, naive_cpu, (naive_codes, naive_logits) = time_generator(naive, 1 if field > 4096 else repeats)
    fast_seconds, fast_cpu, (fast_codes, fast_logits) = time_generator(fast, repeats)
    diff = float(np.abs(np.asarray(naive_logits) - np.asarray(fast_logits[:naive_samples])).max())
    same = bool((np.asarray(naive_codes) == np.asarray(fast_codes)[:, :naive_samples]).all())
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
        "same_samples": same,
    }


def run(*, quick: bool = False, impl: str = "auto", repeats: int = 3, demo_layers=None, on_result=None) -> list[dict]:
    """Measures every configuration; on_result(row) is called as each one finishes."""
    rows = []
    for config in configurations(quick, demo_layers):
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


RECORD = os.path.join(os.path.dirname(__file__), "results", "generation.json")
# The largest logit difference that still counts as the same computation: the tolerance of this repo's exactness
# tests and of the Fast PixelCNN++ paper's, over 100x the float32 rounding the two summation orders give here
# (1e-15 to 7e-7 in the README's table); a cache that fed a wrong past input would not stay within it.
EXACT_TOLERANCE = 1e-4
# How far one CPU-time speed-up may move between runs on this shared machine (a factor): a trend has to beat it.
TREND_NOISE = 1.5
MIN_FIELDS = 3  # receptive fields needed to call a trend


def exactness_claim(rows: Sequence[dict]) -> results.Claim:
    """Reproduced when every configuration's logits agree within EXACT_TOLERANCE and its samples are identical."""
    claim = "Cached (fast) generation gives the naive generator's samples"
    paper = "identical outputs: the cache only removes recomputation"
    if not rows:
        return results.Claim(claim, paper, "no configuration measured", "not tested", "-")
    largest = max(rows, key=lambda row: row["max_abs_logit_diff"])
    differing = [row["name"] for row in rows if not row["same_samples"]]
    above = [row["name"] for row in rows if row["max_abs_logit_diff"] > EXACT_TOLERANCE]
    measured = (
        f"largest max abs logit diff {largest['max_abs_logit_diff']:.1e} ({largest['name']}) over {len(rows)} "
        f"configurations ({', '.join(row['name'] for row in rows)}); identical samples in "
        f"{len(rows) - len(differing)} of {len(rows)} (on the {sum(row['naive_samples'] for row in rows)} timed naive "
        "steps)"
    )
    if above or differing:
        problems = [f"logits beyond {EXACT_TOLERANCE:g} in {', '.join(above)}"] if above else []
        problems += [f"different samples in {', '.join(differing)}"] if differing else []
        return results.Claim(claim, paper, measured, "not reproduced at this scale", "; ".join(problems))
    why = (
        f"every configuration's logits agree within {EXACT_TOLERANCE:g} (float32 rounding only) and both generators "
        "drew the same samples on every timed naive step (same key)"
    )
    return results.Claim(claim, paper, measured, "reproduced", why)


def speedup_claim(rows: Sequence[dict]) -> results.Claim:
    """From the demo rows (batch 1, one per receptive field): reproduced when the CPU-time speed-up rises with the
    layers per block L (`trend`). CPU time decides: it is the work done, which other jobs on a shared machine do
    not inflate; the wall-clock speed-ups are shown beside it."""
    claim = "Speed-up over naive generation grows with the receptive field"
    paper = (
        "naive O(2^L) vs cached O(L) work per sample, so the speed-up about doubles per added layer per block; "
        "their GPU plot: about 20x apart at L = 15"
    )
    demo = sorted((row for row in rows if row["name"].startswith("demo_L")), key=lambda row: row["receptive_field"])
    if len(demo) < MIN_FIELDS:
        measured = f"{len(demo)} demo receptive field(s) measured"
        return results.Claim(claim, paper, measured, "not tested", f"a trend needs at least {MIN_FIELDS} fields")
    layers = [row["layers_per_block"] for row in demo]
    cpu = [row["cpu_speedup"] for row in demo]
    per_layer = float(np.exp(np.polyfit(layers, np.log(cpu), 1)[0]))
    measured = (
        "CPU-time (wall-clock) speed-up by receptive field: "
        + ", ".join(
            f"{row['receptive_field']} (L = {row['layers_per_block']}) {row['cpu_speedup']:.0f}x "
            f"({row['speedup']:.0f}x)"
            for row in demo
        )
        + f"; x{per_layer:.2f} per added layer per block (least-squares line through log speed-up)"
    )
    direction = results.trend(cpu, TREND_NOISE)
    worst = min(itertools.pairwise(demo), key=lambda pair: pair[1]["cpu_speedup"] / pair[0]["cpu_speedup"])
    why = (
        f"the CPU-time speed-up {direction} with L from {cpu[0]:.0f}x at L = {layers[0]} to {cpu[-1]:.0f}x at "
        f"L = {layers[-1]}, its smallest step x{worst[1]['cpu_speedup'] / worst[0]['cpu_speedup']:.2f} "
        f"(L = {worst[0]['layers_per_block']} -> {worst[1]['layers_per_block']}); rising means the last above the "
        f"first by more than a factor {TREND_NOISE:g} (the run-to-run spread allowed) and no step down by more than it"
    )
    verdict = "reproduced" if direction == "rises" else "not reproduced at this scale"
    return results.Claim(claim, paper, measured, verdict, why)


def claims(rows: Sequence[dict]) -> list[results.Claim]:
    """The paper's two claims from the measured rows (as `measure` returns them); plateau None: no training."""
    return [exactness_claim(rows), speedup_claim(rows)]


def write_generation_record(rows: Sequence[dict], command: str, minutes: float, path: str = RECORD) -> None:
    """Writes the claims of `rows` as the paper's results record (read by `python -m common.results`)."""
    results.write_record(path, results.record(claims(rows), "papers/fast_wavenet/bench.py", command, minutes))


SCALING_BATCHES = (1, 4, 16, 64, 256)
SCALING_IMPLS = ("fused", "xla")
SCALING_POSITIONS = 16_000  # batch * samples per timed run (at least MIN_SCALING_SAMPLES samples)
MIN_SCALING_SAMPLES = 200
MATMUL_STEPS = 50
TORCH_PYTHON = os.environ.get("REPRISE_TORCH_PYTHON", ".venv-torch/bin/python")
TORCH_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "torch_wavenet_incremental.py")


def flops_per_sample(model: wavenet.WaveNet) -> int:
    """Multiply-adds x 2 of one generated sample: every layer's taps and output products, and the head."""
    weights = wavenet.fused_weights(model)
    matrices = [weights.taps, weights.outputs, model.head_hidden.kernel.value, model.head_out.kernel.value]
    return 2 * sum(int(np.prod(m.shape)) for m in matrices)


def chained_products(weights: wavenet.FusedWeights, channels: int, x: jax.Array) -> jax.Array:
    """Every layer's products at this batch, x [B, C]: [B, k*C] x [k*C, 2R] and [B, R] x [R, C+S], chained through
    a cheap elementwise step so that no product can be skipped or hoisted."""
    for taps, outputs in zip(weights.taps, weights.outputs, strict=True):
        a = jnp.concatenate([x] * (taps.shape[0] // channels), axis=-1) @ taps
        x = x + 0.01 * (a[:, :channels] @ outputs)[:, :channels]
    return x


def matmul_rate(model: wavenet.WaveNet, batch: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU-time) FLOP/s of plain jnp matmuls of the model's product shapes at this batch
    (`chained_products`), MATMUL_STEPS times in one compiled loop: what this machine's XLA reaches on exactly these
    products, nothing else."""
    weights = wavenet.fused_weights(model)
    c = model.channels

    def chain(x):
        return jax.lax.fori_loop(0, MATMUL_STEPS, lambda _, x: chained_products(weights, c, x), x)

    run = jax.jit(chain).lower(jnp.ones((batch, c))).compile()
    wall, cpu, _ = time_generator(lambda _: run(jnp.ones((batch, c))), repeats)
    flops = MATMUL_STEPS * product_flops_per_step(weights, batch)
    return flops / wall, flops / cpu


def product_flops_per_step(weights: wavenet.FusedWeights, batch: int) -> int:
    """FLOPs of one step of `chained_products` at this batch (2 per multiply-add)."""
    return batch * 2 * (int(np.prod(weights.taps.shape)) + int(np.prod(weights.outputs.shape)))


def loop_cpu_seconds(body, carry, repeats: int) -> float:
    """CPU seconds per iteration of `body(t, carry) -> carry` run MATMUL_STEPS times in one compiled loop."""
    run = jax.jit(lambda carry: jax.lax.fori_loop(0, MATMUL_STEPS, body, carry)).lower(carry).compile()
    _, cpu, _ = time_generator(lambda _: run(carry), repeats)
    return cpu / MATMUL_STEPS


def step_profile(model: wavenet.WaveNet, batch: int, repeats: int, matmul_cpu_flops_per_s: float) -> dict[str, float]:
    """CPU microseconds per generation step of each part of the cached step at this batch: "matmuls" (the layers'
    products, read off `matmul_rate`'s CPU-time rate, which times exactly them), and, each timed alone in its own
    compiled loop, "cache" (reading every layer's past taps from the ring cache and writing every layer's input
    back, as the fused step does) and "sampling" (Gumbel noise for [B, classes] and the argmax). What the whole
    step costs beyond their sum is the rest: elementwise work, the head and the loop's per-operation overhead."""
    ring, c = model.ring, model.channels

    def cache_traffic(t, cache):
        taps = jax.lax.optimization_barrier(read_rows(cache, ring.read_slots(t)))
        written = taps.reshape(ring.num_layers, -1, batch, c)[:, 0] + 1.0  # [L, B, C], one per layer
        return cache.at[ring.write_slots(t)].set(written, mode="promise_in_bounds", unique_indices=True)

    def sampling(t, logits):
        noise = jax.random.gumbel(jax.random.fold_in(jax.random.key(0), t), logits.shape)
        codes = jnp.argmax(logits + noise, axis=-1)
        return logits + 1e-3 * codes[:, None]

    cache = cached_conv.init_cache(ring, batch, c)
    logits = jnp.zeros((batch, model.num_classes))
    products = product_flops_per_step(wavenet.fused_weights(model), batch)
    return {
        "matmuls": 1e6 * products / matmul_cpu_flops_per_s,
        "cache": 1e6 * loop_cpu_seconds(cache_traffic, cache, repeats),
        "sampling": 1e6 * loop_cpu_seconds(sampling, logits, repeats),
    }


def torch_rates(batches, python: str = TORCH_PYTHON) -> dict[int, dict] | None:
    """batch -> the torch peer's JSON row, or None when its environment is missing."""
    if not os.path.exists(python):
        return None
    command = [python, TORCH_SCRIPT, "--batches", ",".join(map(str, batches))]
    command += ["--positions", str(SCALING_POSITIONS // 16), "--min-samples", "20"]  # its steps cost ms
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    return {row["batch"]: row for row in map(json.loads, lines)}


def scaling(*, batches=SCALING_BATCHES, impls=SCALING_IMPLS, repeats: int = 2, on_result=None) -> list[dict]:
    """One row per batch: each impl's samples/s (wall and CPU time), the matmul rate, the torch peer's."""
    config = BenchConfig("wavenet20", "gated", 2, 10, 64, 128, 1)
    model = config.build()
    flops = flops_per_sample(model)
    rows = []
    for batch in batches:
        samples = max(MIN_SCALING_SAMPLES, SCALING_POSITIONS // batch)
        row = {"batch": batch, "samples": samples, "flops_per_sample": flops}
        for impl in impls:
            run = wavenet.make_generator(model, method="fast", batch=batch, num_samples=samples, impl=impl)
            wall, cpu, _ = time_generator(run, repeats)
            row[f"{impl}_samples_per_s"], row[f"{impl}_cpu_samples_per_s"] = (
                batch * samples / wall,
                batch * samples / cpu,
            )
        row["matmul_flops_per_s"], row["matmul_cpu_flops_per_s"] = matmul_rate(model, batch, repeats)
        best = max(impls, key=lambda impl: row[f"{impl}_samples_per_s"])
        row["best_impl"] = best
        row["matmul_fraction"] = flops * row[f"{best}_samples_per_s"] / row["matmul_flops_per_s"]
        row["matmul_cpu_fraction"] = flops * row[f"{best}_cpu_samples_per_s"] / row["matmul_cpu_flops_per_s"]
        row["step_cpu_us"] = 1e6 * batch / row[f"{best}_cpu_samples_per_s"]
        profile = step_profile(model, batch, repeats, row["matmul_cpu_flops_per_s"])
        row.update({f"{part}_cpu_us": us for part, us in profile.items()})
        torch = torch_rates((batch,))
        row["torch_samples_per_s"] = None if torch is None else torch[batch]["samples_per_s"]
        row["torch_cpu_samples_per_s"] = None if torch is None else torch[batch]["cpu_samples_per_s"]
        row["torch_version"] = (
            None if torch is None else f"torch {torch[batch]['torch']}, {torch[batch]['threads']} threads"
        )
        rows.append(row)
        if on_result is not None:
            on_result(row)
    return rows


def scaling_table(rows: list[dict], impls=SCALING_IMPLS) -> str:
    def rate(value):
        return "n/a" if value is None else f"{value:,.0f}"

    header = ["batch"] + [f"{impl} samples/s (CPU-time)" for impl in impls]
    header += ["matmul GFLOP/s (CPU-time)", "fraction of matmul (CPU-time)", "torch samples/s (CPU-time)"]
    header += ["best / torch"]
    body = []
    for row in rows:
        best = row[f"{row['best_impl']}_samples_per_s"]
        line = [row["batch"]]
        line += [f"{rate(row[f'{i}_samples_per_s'])} ({rate(row[f'{i}_cpu_samples_per_s'])})" for i in impls]
        line.append(f"{row['matmul_flops_per_s'] / 1e9:.1f} ({row['matmul_cpu_flops_per_s'] / 1e9:.1f})")
        line.append(f"{row['matmul_fraction']:.0%} ({row['matmul_cpu_fraction']:.0%})")
        line.append(f"{rate(row['torch_samples_per_s'])} ({rate(row['torch_cpu_samples_per_s'])})")
        line.append("n/a" if row["torch_samples_per_s"] is None else f"{best / row['torch_samples_per_s']:.1f}x")
        body.append(line)
    return report.markdown_table(header, body)


PROFILE_PARTS = ("matmuls", "cache", "sampling")


def profile_table(rows: list[dict]) -> str:
    """Where the best cached step's CPU time goes at each batch (`step_profile`), in microseconds per step."""
    header = ["batch", "best step (us)", *(f"{part} (us)" for part in PROFILE_PARTS), "rest (us)"]
    header += [f"{part} share" for part in PROFILE_PARTS]
    body = []
    for row in rows:
        step, parts = row["step_cpu_us"], [row[f"{part}_cpu_us"] for part in PROFILE_PARTS]
        line = [row["batch"], f"{step:,.0f}", *(f"{us:,.0f}" for us in parts), f"{step - sum(parts):,.0f}"]
        body.append(line + [f"{us / step:.0%}" for us in parts])
    return report.markdown_table(header, body)


def pin_cores(cores: str | None) -> None:
    """Restricts this process (and what it starts) to the given cores, e.g. "0" or "0,1"; call before JAX runs
    anything, since XLA sizes its thread pools from the cores it may use when its backend starts."""
    if cores:
        os.sched_setaffinity(0, {int(core) for core in cores.split(",")})


def define_flags() -> None:
    flags.DEFINE_bool("quick", False, "A small subset, within a minute on CPU.")
    flags.DEFINE_bool("json", False, "One JSON object per configuration and line instead of the table.")
    flags.DEFINE_enum("impl", "auto", list(wavenet.FAST_IMPLS), "The cached step's implementation.")
    flags.DEFINE_integer("repeats", 3, "Timed runs per generator; the fastest is kept.")
    flags.DEFINE_bool("scaling", False, "Only the gated WaveNet's batch scaling table (fused, xla, matmul, torch).")
    flags.DEFINE_string("cores", None, 'Pin the process to these cores before JAX starts, e.g. "0" (default: all).')
    flags.DEFINE_list("demo_layers", None, f"The demo's layers per block to time (default 1..{max(DEMO_LAYERS)}).")
    flags.DEFINE_bool("record", False, f"Also write the claims these rows decide to {os.path.relpath(RECORD)}.")


def main(argv) -> None:
    started = time.perf_counter()
    pin_cores(FLAGS.cores)
    app.prepare(argv)
    if FLAGS.record and FLAGS.scaling:
        raise ConfigError("--record takes the naive vs cached rows; --scaling measures only the cached generator")

    def emit(row):
        if FLAGS.json:
            print(json.dumps(row), flush=True)

    if FLAGS.scaling:
        rows = scaling(repeats=FLAGS.repeats, on_result=emit)
        if not FLAGS.json:
            print(scaling_table(rows))
            print(f"\n{profile_table(rows)}")
            print(f"\ncores: {sorted(os.sched_getaffinity(0))}; {report.machine_description()}")
        return
    demo_layers = [int(n) for n in FLAGS.demo_layers] if FLAGS.demo_layers else None
    rows = run(quick=FLAGS.quick, impl=FLAGS.impl, repeats=FLAGS.repeats, demo_layers=demo_layers, on_result=emit)
    if not FLAGS.json:
        print(table(rows))
        print(f"\n{report.machine_description()}")
    if FLAGS.record:
        write_generation_record(
            rows, results.rerun_command("papers.fast_wavenet.bench"), (time.perf_counter() - started) / 60
        )
        print(f"wrote {os.path.relpath(RECORD)}", file=sys.stderr if FLAGS.json else sys.stdout, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
