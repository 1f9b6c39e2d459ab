"""Replay throughput: DQN on CartPole at replay ratio 0.25 (one update of batch 32 every 4 environment steps).

Environment steps/s and learner updates/s, measured in one run for
  single-process + Reverb       the runner of common/rl/runner.py on an in-process Reverb table
  single-process + ring buffer  the same runner on a plain numpy ring buffer (common/rl/ring_buffer.py)
  distributed + Reverb          a Reverb server process, 2 actor processes over gRPC, the learner
                                (common/rl/distributed.py)
Rates are medians over the logged windows after the first (which holds compilation, the replay warm-up and, when
distributed, process start-up).

python -m benchmarks.run_all --only replay
"""

import os
import statistics
import tempfile
import time

from common import report
from common.rl import distributed, runner
from common.train.metrics import read_metrics
from papers.replay_fundamentals import config as paper_config

SETTINGS = (("single-process", "reverb"), ("single-process", "ring"), ("distributed (2 actors)", "reverb"))


def benchmark_config(mode: str, backend: str, total_updates: int):
    config = paper_config.get_config("cartpole_dqn")
    config.replay.update(backend=backend, replay_ratio=0.25, batch_size=32, min_size_to_sample=500)
    config.run.update(
        mode="distributed" if mode.startswith("distributed") else "single_process",
        total_updates=total_updates,
        log_every=max(total_updates // 2, 100),  # env steps per window: 8 windows per run at ratio 0.25
        checkpoint_every=0,
        num_actors=2,
    )
    return config


def measure(mode: str, backend: str, total_updates: int) -> dict:
    """Median environment steps/s and updates/s over the logged windows after the first, and the wall time."""
    config = benchmark_config(mode, backend, total_updates)
    train = distributed.train_distributed if config.run.mode == "distributed" else runner.train_single_process
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        train(config, workdir, log=lambda _: None)
        rows = [row for row in read_metrics(workdir) if "updates_per_second" in row][1:]
    return {
        "env_steps_per_second": statistics.median(row["env_steps_per_second"] for row in rows),
        "updates_per_second": statistics.median(row["updates_per_second"] for row in rows),
        "windows": len(rows),
        "seconds": time.perf_counter() - started,
    }


def markdown(total_updates: int = 2_000) -> str:
    load_before = os.getloadavg()[0]
    results = [(mode, backend, measure(mode, backend, total_updates)) for mode, backend in SETTINGS]
    rows = [
        [
            mode,
            backend,
            f"{r['env_steps_per_second']:.0f}",
            f"{r['updates_per_second']:.1f}",
            r["windows"],
            f"{r['seconds']:.0f}",
        ]
        for mode, backend, r in results
    ]
    header = ["layout", "replay", "env steps/s", "updates/s", "windows", "run (s)"]
    return "\n\n".join(
        [
            "## Replay: DQN on CartPole, replay ratio 0.25",
            report.markdown_table(header, rows),
            f"{total_updates:,} updates (batch 32) per run, MLP 64-64; median over the logged windows after the first."
            f" Measured on {report.machine_description()} by `python -m benchmarks.run_all --only replay`; the"
            f" 1-minute load average was {load_before:.1f} before and {os.getloadavg()[0]:.1f} after (the cores are"
            " shared, so the rates move with other jobs).",
        ]
    )
