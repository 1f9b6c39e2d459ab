"""Naive vs cached PixelCNN++ generation speed, measured side by side in one process.

python -m papers.fast_generation.bench [--quick] [--json] [--repeats N] [--models cifar10,small] [--batches 1,4]
    [--plot speedup.png] [--from_json rows.jsonl] [--single_thread] [--record]

Models (random weights, seed 0: speed does not depend on them; dropout off):
  cifar10  the paper's model: 32 x 32 x 3, nr_resnet 5, 160 filters, 10 logistic mixtures.
  small    this repo's default model: 28 x 28 x 1 (Fashion-MNIST), nr_resnet 1, 16 filters, 5 mixtures.
  wavenet20  (on request) the Fast WaveNet paper's gated 20-layer WaveNet, residual 64, skip 128, timed by
           papers/fast_wavenet/bench.py: a "pixel" in its rows is one audio sample, samples/s audio samples/s.
Batches 1, 4, 16, 64, 256; --quick: the small model at batch 1 and 4 (about a minute of CPU time, most of it
compiling; 7 min wall-clock on 2 cores shared with load 12). Each configuration compiles both generators, then times
whole compiled generation loops (sampling included) and keeps the fastest of `repeats` runs. The naive generator
costs one full forward pass per pixel whatever the pixel, so it is timed on the first few pixels (`naive_pixels`);
the cached one on whole images (small) or on the first rows of the image (cifar10, a multiple of 4 rows: the coarser
scales run every 2nd and 4th row) where a whole image would take too long (`fast_pixels`). Rates are images per
second, extrapolated from the timed pixels: batch * timed pixels / (H * W) / seconds. max_abs_logit_diff compares
the two generators' mixture parameters over the naive run's pixels (same key, so the same pixels are drawn and fed
back).
--json: one JSON object per configuration and line instead of the table. --plot PATH: also draw speedup and cached
images/s vs batch with the paper's PixelCNN++ speedups; --from_json FILE: read rows saved by --json instead of
measuring (to redraw the figure or the table). --single_thread: XLA:CPU's matmuls and convs on one thread
(--xla_cpu_multi_thread_eigen=false), for a CPU shared with other jobs, where waiting on descheduled pool threads
costs more than the threads save. --record: also turn the measured rows into the paper's claims (`claims`: the same
pixels, and the speed-up growing with the batch) and write them to results/generation.json, which
`python -m common.results` gathers into docs/results.md.
"""

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np
from absl import flags
from flax import nnx

from common import app, report, results
from common.errors import ConfigError
from common.nn import cached_pixelcnn, pixelcnn
from common.registry import lookup

FLAGS = flags.FLAGS
BATCHES = (1, 4, 16, 64, 256)
QUICK_BATCHES = (1, 4)
CPU_CIFAR10_BATCHES = [1, 4]  # what `markdown()` times of cifar10 on a CPU
# The paper's speedup of cached over naive PixelCNN++ generation (K40, pretrained CIFAR-10 model), by batch.
PAPER_SPEEDUP = {1: 2, 2: 4, 4: 6, 8: 10, 16: 18, 32: 33, 64: 61, 128: 109, 256: 183}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    image_shape: tuple[int, int, int]
    nr_resnet: int
    nr_filters: int
    nr_logistic_mix: int
    naive_rows: float  # image rows the naive generator is timed on (a fraction: that part of the first row)
    fast_rows: int | None  # rows the cached one is timed on; None: the whole image

    def build(self) -> pixelcnn.PixelCNNPlusPlus:
        return pixelcnn.PixelCNNPlusPlus(
            image_shape=self.image_shape,
            nr_resnet=self.nr_resnet,
            nr_filters=self.nr_filters,
            nr_logistic_mix=self.nr_logistic_mix,
            dropout=0.0,
            rngs=nnx.Rngs(0),
        )


MODELS = {
    "cifar10": ModelSpec((32, 32, 3), 5, 160, 10, naive_rows=1 / 16, fast_rows=4),
    "small": ModelSpec((28, 28, 1), 1, 16, 5, naive_rows=1, fast_rows=None),
}


# The paper's other model: the Fast WaveNet paper's gated 20-layer WaveNet (2 blocks of dilations 1..512, residual
# 64, skip 128), timed by papers/fast_wavenet/bench.py's `measure` so its curve shares the speed-up figure. In its
# rows a "pixel" is one generated audio sample and samples/s counts audio samples.
WAVENET = "wavenet20"


def model_families() -> dict[str, str]:
    """Bench model name -> architecture, read when called so that a model added to MODELS is known."""
    return {**{name: "PixelCNN++" for name in MODELS}, WAVENET: "WaveNet"}


def configurations(quick: bool, models: list[str] | None = None, batches: list[int] | None = None):
    """(model name, batch) pairs: the small model first (it finishes quickly), then cifar10 (wavenet20 on
    request)."""
    names = models or (["small"] if quick else ["small", "cifar10"])
    for name in names:
        lookup(model_families(), name, "bench model")
    return [(name, batch) for name in names for batch in (batches or (QUICK_BATCHES if quick else BATCHES))]


def time_generator(run, repeats: int):
    """Fastest wall-clock and process CPU seconds of `repeats` calls after one compiling call, and the result."""
    result = jax.block_until_ready(run(jax.random.key(0)))
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = jax.block_until_ready(run(jax.random.key(0)))
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def measure_wavenet(batch: int, *, repeats: int) -> dict:
    """papers/fast_wavenet/bench.py's naive vs fast measurement of WAVENET at `batch`, in this bench's row keys."""
    from papers.fast_wavenet import bench as wavenet_bench

    config = wavenet_bench.BenchConfig(f"{WAVENET}_b{batch}", "gated", 2, 10, 64, 128, batch)
    row = wavenet_bench.measure(config, quick=False, impl="auto", repeats=repeats)
    return {
        "model": WAVENET,
        "batch": batch,
        "naive_pixels": row["naive_samples"],
        "fast_pixels": row["fast_samples"],
        "naive_samples_per_s": row["naive_samples_per_s"],
        "fast_samples_per_s": row["fast_samples_per_s"],
        "speedup": row["speedup"],
        "naive_ms_per_pixel": row["naive_ms_per_step"],
        "fast_ms_per_pixel": row["fast_ms_per_step"],
        "cpu_speedup": row["cpu_speedup"],
        "max_abs_logit_diff": row["max_abs_logit_diff"],
        "same_pixels": row["same_samples"],
        "device": jax.devices()[0].platform,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def measure(name: str, batch: int, *, repeats: int) -> dict:
    if name == WAVENET:
        return measure_wavenet(batch, repeats=repeats)
    spec = lookup(MODELS, name, "bench model")
    model = spec.build()
    height, width, _ = spec.image_shape
    naive_pixels = max(1, int(spec.naive_rows * width))
    fast_pixels = height * width if spec.fast_rows is None else spec.fast_rows * width
    naive = pixelcnn.make_naive_sampler(model, batch, num_pixels=naive_pixels)
    fast = cached_pixelcnn.make_cached_sampler(model, batch, num_pixels=fast_pixels)
    naive_seconds, naive_cpu, (naive_images, naive_params) = time_generator(naive, repeats)
    fast_seconds, fast_cpu, (fast_images, fast_params) = time_generator(fast, repeats)
    per_image = height * width

    def first(x, count):  # [B, H, W, D] -> the first `count` pixels in raster order [B, count, D]
        return np.asarray(x).reshape(batch, per_image, -1)[:, :count]

    diff = float(np.abs(first(naive_params, naive_pixels) - first(fast_params, naive_pixels)).max())
    same = bool((first(naive_images, naive_pixels) == first(fast_images, naive_pixels)).all())
    naive_rate = batch * naive_pixels / per_image / naive_seconds
    fast_rate = batch * fast_pixels / per_image / fast_seconds
    return {
        "model": name,
        "image_shape": list(spec.image_shape),
        "nr_resnet": spec.nr_resnet,
        "nr_filters": spec.nr_filters,
        "batch": batch,
        "naive_pixels": naive_pixels,
        "fast_pixels": fast_pixels,
        "naive_samples_per_s": naive_rate,
        "fast_samples_per_s": fast_rate,
        "speedup": fast_rate / naive_rate,
        "naive_ms_per_pixel": 1e3 * naive_seconds / naive_pixels,
        "fast_ms_per_pixel": 1e3 * fast_seconds / fast_pixels,
        "cpu_speedup": (naive_cpu / naive_pixels) / (fast_cpu / fast_pixels),
        "max_abs_logit_diff": diff,
        "same_pixels": same,
        "device": jax.devices()[0].platform,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def run(*, quick=False, repeats=2, models=None, batches=None, on_result=None) -> list[dict]:
    """Measures every configuration; on_result(row) is called as each one finishes."""
    rows = []
    for name, batch in configurations(quick, models, batches):
        row = measure(name, batch, repeats=repeats)
        rows.append(row)
        if on_result is not None:
            on_result(row)
    return rows


def table(rows: list[dict]) -> str:
    """Rows as `measure` returns them; for wavenet20 read samples/s as audio samples/s and a pixel as a sample."""
    header = ["model", "batch", "naive samples/s", "cached samples/s", "speedup", "CPU-time speedup"]
    header += ["naive ms/step", "cached ms/step", "timed naive / cached steps", "max abs logit diff", "same samples"]
    body = [
        [
            row["model"],
            row["batch"],
            f"{row['naive_samples_per_s']:.3g}",
            f"{row['fast_samples_per_s']:.3g}",
            f"{row['speedup']:.1f}x",
            f"{row['cpu_speedup']:.1f}x",
            f"{row['naive_ms_per_pixel']:.3g}",
            f"{row['fast_ms_per_pixel']:.3g}",
            f"{row['naive_pixels']} / {row['fast_pixels']}",
            f"{row['max_abs_logit_diff']:.1e}",
            "yes" if row["same_pixels"] else "no",
        ]
        for row in rows
    ]
    return report.markdown_table(header, body)


def curve_name(row: dict) -> str:
    """The model, and "1 thread" where the run was --single_thread."""
    single = "multi_thread_eigen=false" in row.get("xla_flags", "")
    return f"{row['model']}, 1 thread" if single else row["model"]


def plot_speedup(rows: list[dict], path: str) -> None:
    """Left: speedup (wall-clock, solid; CPU time, dashed) vs batch per model, with the paper's K40 numbers;
    right: the cached generator's samples/s vs batch. Log axes; rows as `measure` returns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (speed_ax, rate_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    paper = sorted(PAPER_SPEEDUP.items())
    speed_ax.plot(*zip(*paper, strict=True), "k-o", markersize=3, label="paper: PixelCNN++ CIFAR-10, K40")
    rate_ax.set_title("cached samples/s (images; WaveNet: audio samples)", fontsize=8)
    for index, name in enumerate(dict.fromkeys(map(curve_name, rows))):
        mine = sorted((row for row in rows if curve_name(row) == name), key=lambda row: row["batch"])
        batches, color = [row["batch"] for row in mine], f"C{index}"
        speed_ax.plot(batches, [row["speedup"] for row in mine], "-o", color=color, markersize=3, label=name)
        cpu = [row["cpu_speedup"] for row in mine]
        speed_ax.plot(batches, cpu, "--", color=color, alpha=0.7, label=f"{name} (CPU time)")
        rate_ax.plot(batches, [row["fast_samples_per_s"] for row in mine], "-o", color=color, markersize=3, label=name)
    for ax, ylabel in [(speed_ax, "speedup over naive"), (rate_ax, "cached samples / s")]:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    families = model_families()
    models = " and ".join(dict.fromkeys(families.get(row["model"], row["model"]) for row in rows))
    fig.suptitle(f"Fast {models} generation, {rows[0]['device'] if rows else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


RECORD = os.path.join(os.path.dirname(__file__), "results", "generation.json")
FIGURE = "speedup.png"  # the README's speed-up figure (drawn by --plot from the README's runs)
# The paper's test of the cached generator: outputs equal to the naive network's to 1e-4 (float32 rounding of the
# two computation orders is 1e-8 to 1e-7 here; a cache that fed a wrong past activation would not stay within it).
EXACT_TOLERANCE = 1e-4
# How far one CPU-time speed-up moved between runs of the same batch on this shared machine (README: 283-420x at
# batch 4), as a factor: a trend has to beat it.
TREND_NOISE = 1.5
MIN_BATCHES = 3  # batches needed to call a trend
# The share of the paper's speed-up growth over the measured batches (on a log scale) that counts as "more so at
# larger batch": half, e.g. x3 from batch 1 to 16 where the paper's grows x9 (2x to 18x). A rise within that is
# real but not the paper's effect (two runs here measured x1.3 and x1.8 from batch 1 to 16).
PAPER_RISE_SHARE = 0.5


def pixels_claim(rows: Sequence[dict]) -> results.Claim:
    """Reproduced when every configuration drew the same pixels and its mixture parameters agree within
    EXACT_TOLERANCE."""
    claim = "Cached PixelCNN++ generation draws the naive sampler's pixels"
    paper = f"same outputs as the naive network (their test: to {EXACT_TOLERANCE:g})"
    if not rows:
        return results.Claim(claim, paper, "no configuration measured", "not tested", "-")
    names = [f"{row['model']} batch {row['batch']}" for row in rows]
    differing = [name for name, row in zip(names, rows, strict=True) if not row["same_pixels"]]
    above = [name for name, row in zip(names, rows, strict=True) if row["max_abs_logit_diff"] > EXACT_TOLERANCE]
    largest = max(row["max_abs_logit_diff"] for row in rows)
    measured = (
        f"same pixels in {len(rows) - len(differing)} of {len(rows)} configurations ({', '.join(names)}), on the "
        f"{'/'.join(str(n) for n in sorted({row['naive_pixels'] for row in rows}))} timed naive pixels of each; "
        f"mixture parameters within {largest:.1e}"
    )
    if differing or above:
        problems = [f"different pixels in {', '.join(differing)}"] if differing else []
        problems += [f"mixture parameters beyond {EXACT_TOLERANCE:g} in {', '.join(above)}"] if above else []
        return results.Claim(claim, paper, measured, "not reproduced at this scale", "; ".join(problems))
    why = (
        "both generators drew the same pixels in every configuration (same key) and their mixture parameters agree "
        f"within the paper's {EXACT_TOLERANCE:g}"
    )
    return results.Claim(claim, paper, measured, "reproduced", why)


def speedup_claim(rows: Sequence[dict]) -> results.Claim:
    """Per model (curve_name) with at least MIN_BATCHES batches: whether cached is faster than naive at every batch
    and whether its speed-up grows with the batch as the paper's does: it `trend`-rises and, over batches the paper
    measured, grows at least PAPER_RISE_SHARE of the paper's growth on a log scale. Reproduced: faster and growing
    so for every model; partly: faster everywhere but flatter; else not reproduced. CPU time decides (the work
    done, which other jobs on a shared machine do not inflate); wall-clock is shown beside it."""
    claim = "Cached generation is faster than naive, more so at larger batch"
    paper = "K40, CIFAR-10 PixelCNN++, speed-up by batch: " + ", ".join(f"{b}: {x}x" for b, x in PAPER_SPEEDUP.items())
    curves = {}
    for row in sorted(rows, key=lambda row: row["batch"]):
        curves.setdefault(curve_name(row), []).append(row)
    curves = {name: curve for name, curve in curves.items() if len(curve) >= MIN_BATCHES}
    if not curves:
        measured = f"no model measured at {MIN_BATCHES} or more batches"
        return results.Claim(claim, paper, measured, "not tested", f"a trend needs at least {MIN_BATCHES} batches")
    measured, findings, growing, slower = [], [], [], []
    for name, curve in curves.items():
        cpu = [row["cpu_speedup"] for row in curve]
        slower += [f"{name} batch {row['batch']}" for row in curve if row["cpu_speedup"] <= 1]
        measured.append(
            f"{name}: CPU-time (wall-clock) speed-up vs the paper's by batch: "
            + ", ".join(
                f"{row['batch']}: {row['cpu_speedup']:.0f}x ({row['speedup']:.0f}x) vs "
                + (f"{PAPER_SPEEDUP[row['batch']]}x" if row["batch"] in PAPER_SPEEDUP else "-")
                for row in curve
            )
        )
        first, last = curve[0]["batch"], curve[-1]["batch"]
        direction, growth = results.trend(cpu, TREND_NOISE), cpu[-1] / cpu[0]
        finding = f"{name}: the speed-up {direction} from batch {first} to {last}, x{growth:.2f}"
        steep = direction == "rises"
        if first in PAPER_SPEEDUP and last in PAPER_SPEEDUP:
            needed = (PAPER_SPEEDUP[last] / PAPER_SPEEDUP[first]) ** PAPER_RISE_SHARE
            finding += (
                f" where the paper's grows x{PAPER_SPEEDUP[last] / PAPER_SPEEDUP[first]:.0f} (x{needed:.1f} needed)"
            )
            steep = steep and growth >= needed
        growing.append(steep)
        findings.append(finding)
    if slower:
        verdict, lead = "not reproduced at this scale", f"cached is not faster at {', '.join(slower)}"
    else:
        verdict, lead = "reproduced" if all(growing) else "partly", "cached is faster at every batch"
    why = (
        f"{lead}; {'; '.join(findings)}; rising means the last above the first by more than a factor "
        f"{TREND_NOISE:g} (the run-to-run spread allowed) and no step down by more than it, and growing as the "
        f"paper's means at least {PAPER_RISE_SHARE:.0%} of its growth on a log scale"
    )
    return results.Claim(claim, paper, "; ".join(measured), verdict, why, FIGURE)


def claims(rows: Sequence[dict]) -> list[results.Claim]:
    """The paper's two generation claims from measured rows (as `measure` returns them); plateau None."""
    pixelcnn_rows = [row for row in rows if row["model"] in MODELS]  # the paper's claims are PixelCNN++'s
    return [pixels_claim(pixelcnn_rows), speedup_claim(pixelcnn_rows)]


def write_generation_record(rows: Sequence[dict], command: str, minutes: float, path: str = RECORD) -> None:
    """Writes the claims of `rows` as the paper's results record (read by `python -m common.results`)."""
    results.write_record(path, results.record(claims(rows), "papers/fast_generation/bench.py", command, minutes))


def markdown(repeats: int = 1) -> str:
    """The docs section: the table (cifar10 at batches 1 and 4 only on a CPU; wavenet20 at every batch) and how it
    was measured."""
    start = time.perf_counter()
    # On CPU a naive cifar10 pass takes seconds per image: its larger batches are left to an accelerator.
    on_cpu = jax.devices()[0].platform == "cpu"
    rows = run(models=["small"], repeats=repeats)
    rows += run(models=["cifar10"], batches=CPU_CIFAR10_BATCHES if on_cpu else None, repeats=repeats)
    rows += run(models=[WAVENET], repeats=repeats)
    minutes = (time.perf_counter() - start) / 60
    return (
        "## Fast PixelCNN++ (and WaveNet) generation: naive vs cached\n\n"
        f"{table(rows)}\n\n"
        "Whole compiled generation loops (sampling included), float32, random weights, the fastest of "
        f"{repeats} run(s) after compilation; images/s extrapolated from the timed pixels (naive: each pixel is a "
        "full forward pass; cached: whole images for the small model, the first 4 rows for cifar10). The logit "
        "difference and the pixels compare both generators on the naive run's pixels with the same key. "
        f"{WAVENET}: the Fast WaveNet paper's model through papers/fast_wavenet/bench.py (samples are audio samples, "
        "a step one sample; naive timed on 2 or more steps, cached on 4,000). "
        f"`python -m papers.fast_generation.bench`, {minutes:.1f} min on {report.machine_description()}.\n"
    )


def define_flags() -> None:
    flags.DEFINE_bool("quick", False, "The small model at batch 1 and 4: about a minute of CPU time.")
    flags.DEFINE_bool("json", False, "One JSON object per configuration and line instead of the table.")
    flags.DEFINE_integer("repeats", 2, "Timed runs per generator after the compiling one; the fastest is kept.")
    flags.DEFINE_list(
        "models", None, f"Models to time (default: small, cifar10; --quick: small); of {sorted(model_families())}."
    )
    flags.DEFINE_list("batches", None, f"Batch sizes (default {BATCHES}; --quick {QUICK_BATCHES}).")
    flags.DEFINE_bool("single_thread", False, "XLA:CPU matmuls and convs on one thread (a CPU shared with others).")
    flags.DEFINE_string("plot", None, "Also draw speedup and cached samples/s vs batch to this PNG.")
    flags.DEFINE_string("from_json", None, "Rows saved by --json (one per line) to use instead of measuring.")
    flags.DEFINE_bool("record", False, f"Also write the claims these rows decide to {os.path.relpath(RECORD)}.")


def main(argv) -> None:
    started = time.perf_counter()
    if FLAGS.record and FLAGS.from_json:
        raise ConfigError("--record keeps a measurement with its time and machine; --from_json rows were not timed now")
    if FLAGS.single_thread:  # read when the CPU backend starts, which app.prepare does
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
    app.prepare(argv)

    def emit(row):
        if FLAGS.json:
            print(json.dumps(row), flush=True)

    batches = [int(b) for b in FLAGS.batches] if FLAGS.batches else None
    if FLAGS.from_json:
        with open(FLAGS.from_json) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        rows = run(quick=FLAGS.quick, repeats=FLAGS.repeats, models=FLAGS.models, batches=batches, on_result=emit)
    if FLAGS.plot:
        plot_speedup(rows, FLAGS.plot)
    if not FLAGS.json:
        print(table(rows))
        print(f"\n{report.machine_description()}")
    if FLAGS.record:
        write_generation_record(
            rows, results.rerun_command("papers.fast_generation.bench"), (time.perf_counter() - started) / 60
        )
        print(f"wrote {os.path.relpath(RECORD)}", file=sys.stderr if FLAGS.json else sys.stdout, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
