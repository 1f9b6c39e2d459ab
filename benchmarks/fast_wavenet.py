"""Fast WaveNet generation on CPU: naive (rerun the receptive field per sample) vs cached, side by side.

Runs papers/fast_wavenet/bench.py's full configuration list in this process (both generators of a configuration
are compiled, then timed one after the other), renders the table, the per-sample time vs number of layers plot
(docs/fast_wavenet_bench.png) and the paper's goals read off the same run; the same section also replaces the
"bench" block of papers/fast_wavenet/README.md.

python -m benchmarks.run_all --only fast_wavenet
"""

import time

from common import report
from papers.fast_wavenet import bench

PLOT = "docs/fast_wavenet_bench.png"
README = "papers/fast_wavenet/README.md"
REPEATS = 2  # timed runs per generator (the fastest is kept); keeps the whole section near 10 minutes on 2 cores
SPEEDUP_GOAL, SPEEDUP_FIELD = 200, 2047
RATE_GOAL = 16_000


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


def markdown() -> str:
    start = time.perf_counter()
    rows = bench.run(quick=False, impl="auto", repeats=REPEATS)
    minutes = (time.perf_counter() - start) / 60
    render_plot(rows, PLOT)
    body = (
        f"{bench.table(rows)}\n\n![per-sample time vs layers](IMAGE)\n\n{goals(rows)}\n\n"
        "Whole compiled generation loops (one `lax.scan`, sampling included), float32, random weights, the fastest "
        f"of {REPEATS} runs after compilation (one run for naive configurations with a field above 4,096). Naive "
        "is timed on few samples (each costs the same, a full pass over the receptive field) and fast on 4,000; "
        "the logit difference compares both on the naive run's steps with the same key. Samples/s, ms/step and "
        "speedup are wall-clock; the CPU-time columns are the process's CPU time (all threads), the work done, "
        "which other jobs on the machine do not inflate. Cached step: impl auto "
        f"(the XLA path on CPU). `python -m papers.fast_wavenet.bench`, {minutes:.1f} min on "
        f"{report.machine_description()}, a machine shared with other jobs.\n"
    )
    report.replace_block(README, "bench", body.replace("IMAGE", "../../" + PLOT))
    return "## Fast WaveNet generation: naive vs cached (CPU)\n\n" + body.replace("IMAGE", PLOT.removeprefix("docs/"))


if __name__ == "__main__":
    print(markdown())
