"""Fast WaveNet generation on CPU: naive (rerun the receptive field per sample) vs cached, side by side.

Runs papers/fast_wavenet/bench.py's full configuration list in this process (both generators of a configuration
are compiled, then timed one after the other), renders the table, the per-sample time vs number of layers plot
(docs/fast_wavenet_bench.png) and the paper's goals read off the same run, then the gated WaveNet's batch scaling
(bench.scaling: each cached step, the matmul rate of the same shapes, the PyTorch incremental peer) and its goals;
the same section also replaces the "bench" block of papers/fast_wavenet/README.md.

python -m benchmarks.run_all --only fast_wavenet
"""

import time

from common import report
from papers.fast_wavenet import bench

PLOT = "docs/fast_wavenet_bench.png"
README = "papers/fast_wavenet/README.md"
REPEATS = 2  # timed runs per generator (the fastest is kept); the whole section takes over 10 minutes on 2 cores
SPEEDUP_GOAL, SPEEDUP_FIELD = 200, 2047
RATE_GOAL = 16_000
MATMUL_FRACTION_GOAL, MATMUL_FRACTION_BATCH = 0.5, 64
TORCH_SPEEDUP_GOAL = 3.0


def render_plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demo = [row for row in rows if row["activation"] == "relu"]
    layers = [row["layers_per_block"] for row in demo]
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=120)
    ax.semilogy(layers, [row["naive_ms_per_step"] for row in demo], "o-", label="naive (receptive field per sample)")
    ax.semilogy(layers, [row["fast_ms_per_step"] for row in demo], "s-", label="fast (cached, O(L) per sample)")
    ax.set_xlabel("layers per block L (2 blocks, receptive field 2^(L+1) - 1)")
    ax.set_ylabel("ms per generated sample (batch 1)")
    ax.set_title("Fast WaveNet demo model, 128 channels, CPU")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def goals(rows: list[dict]) -> str:
    """The two targets, read off this run's rows."""
    wide = [row for row in rows if row["receptive_field"] >= SPEEDUP_FIELD]
    weakest = min(wide, key=lambda row: row["speedup"])
    gated = next(row for row in rows if row["name"] == "wavenet20_b1")
    weakest_cpu = min(wide, key=lambda row: row["cpu_speedup"])
    cpu_rate = gated["batch"] / (gated["fast_cpu_ms_per_step"] / 1e3)
    speed_met = "met" if weakest["speedup"] >= SPEEDUP_GOAL else "not met"
    rate_met = "met" if gated["fast_samples_per_s"] >= RATE_GOAL else "not met"
    return (
        f"- Speed-up >= {SPEEDUP_GOAL}x at receptive field >= {SPEEDUP_FIELD}: {speed_met} in wall-clock time; the "
        f"smallest measured is {weakest['speedup']:.0f}x ({weakest['name']}, field {weakest['receptive_field']}); "
        f"in CPU time the smallest is {weakest_cpu['cpu_speedup']:.0f}x ({weakest_cpu['name']}).\n"
        f"- >= {RATE_GOAL:,} samples/s at batch 1 for the 20-layer residual-64 WaveNet: {rate_met}; measured "
        f"{gated['fast_samples_per_s']:,.0f} samples/s wall-clock ({1e3 * gated['fast_ms_per_step']:.0f} us per "
        f"step), {cpu_rate:,.0f} samples/s of CPU time ({1e3 * gated['fast_cpu_ms_per_step']:.0f} us per step)."
    )


def scaling_goals(rows: list[dict]) -> str:
    """The batch-scaling targets, read off this run's scaling rows (best impl per batch, wall-clock)."""
    rates = [row[f"{row['best_impl']}_samples_per_s"] for row in rows]
    steps = zip(rows, rows[1:], rates, rates[1:], strict=False)
    falls = [(a["batch"], b["batch"]) for a, b, rate_a, rate_b in steps if rate_b < rate_a]
    large = [row for row in rows if row["batch"] >= MATMUL_FRACTION_BATCH]
    weakest = min(large, key=lambda row: row["matmul_fraction"])
    first = rows[0]
    first_cpu = first[f"{first['best_impl']}_cpu_samples_per_s"]
    torch = first["torch_samples_per_s"]
    lines = [
        f"- samples/s never falls as the batch grows: {'met' if not falls else 'not met'}"
        + ("" if not falls else f" (falls from batch {falls[0][0]} to {falls[0][1]})"),
        f"- >= {MATMUL_FRACTION_GOAL:.0%} of the matmul rate at batch >= {MATMUL_FRACTION_BATCH}: "
        f"{'met' if weakest['matmul_fraction'] >= MATMUL_FRACTION_GOAL else 'not met'}; the smallest is "
        f"{weakest['matmul_fraction']:.0%} wall-clock ({weakest['matmul_cpu_fraction']:.0%} CPU-time) at batch "
        f"{weakest['batch']}",
        f"- batch {first['batch']} >= {RATE_GOAL:,} samples/s: {'met' if rates[0] >= RATE_GOAL else 'not met'} "
        f"({rates[0]:,.0f} wall-clock, {first_cpu:,.0f} CPU-time)",
        f"- batch {first['batch']} >= {TORCH_SPEEDUP_GOAL:.0f}x the PyTorch peer: "
        + (
            "not measured (no torch environment)"
            if torch is None
            else f"{'met' if rates[0] >= TORCH_SPEEDUP_GOAL * torch else 'not met'} ({rates[0] / torch:.1f}x)"
        ),
    ]
    return "\n".join(lines)


def markdown() -> str:
    start = time.perf_counter()
    rows = bench.run(quick=False, impl="auto", repeats=REPEATS)
    scaling_rows = bench.scaling(repeats=REPEATS)
    minutes = (time.perf_counter() - start) / 60
    torch_version = scaling_rows[0]["torch_version"] or "no torch environment (REPRISE_TORCH_PYTHON)"
    render_plot(rows, PLOT)
    body = (
        f"{bench.table(rows)}\n\n![per-sample time vs layers](IMAGE)\n\n{goals(rows)}\n\n"
        "Whole compiled generation loops (one `lax.scan`, sampling included), float32, random weights, the fastest "
        f"of {REPEATS} runs after compilation (one run for naive configurations with a field above 4,096). Naive "
        "is timed on few samples (each costs the same, a full pass over the receptive field) and fast on 4,000; "
        "the logit difference compares both on the naive run's steps with the same key. Samples/s, ms/step and "
        "speedup are wall-clock; the CPU-time columns are the process's CPU time (all threads), the work done, "
        "which other jobs on the machine do not inflate. Cached step: impl auto "
        f"(the fused XLA step on CPU). `python -m papers.fast_wavenet.bench`, {minutes:.1f} min on "
        f"{report.machine_description()}, a machine shared with other jobs.\n\n"
        "### Batch scaling of the gated 20-layer WaveNet (residual 64, skip 128)\n\n"
        f"{bench.scaling_table(scaling_rows)}\n\n{scaling_goals(scaling_rows)}\n\n"
        "Samples/s of whole compiled generation loops (sampling included), wall-clock with the process's CPU time "
        "in brackets; fused: this repo's per-layer fused step (the CPU default above batch 1), xla: the kernels "
        "package's stack step. The matmul rate is plain jnp matmuls of the model's product shapes at the same "
        "batch, chained in one compiled loop; the fraction is model FLOPs per sample x samples/s of the faster "
        "step over that rate. "
        f"The PyTorch peer is wavenet_vocoder's incremental step ({torch_version}), run as a subprocess right "
        "after each batch's JAX timings. `python -m papers.fast_wavenet.bench --scaling`.\n\n"
        "Where the faster step's CPU time goes (same run, microseconds per step): each part timed alone in its "
        "own compiled loop at that batch: the layers' products (as the matmul rate chains them), the cache's "
        "reads and writes (every layer's past taps read, every layer's input written back), and sampling "
        "(Gumbel noise for [B, 256] and the argmax); the rest is what the step costs beyond their sum "
        "(elementwise work, the head, per-operation overhead).\n\n"
        f"{bench.profile_table(scaling_rows)}\n"
    )
    report.replace_block(README, "bench", body.replace("IMAGE", "../../" + PLOT))
    return "## Fast WaveNet generation: naive vs cached (CPU)\n\n" + body.replace("IMAGE", PLOT.removeprefix("docs/"))


if __name__ == "__main__":
    print(markdown())
