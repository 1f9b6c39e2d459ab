"""Replay throughput: DQN on CartPole at replay ratio 0.25 (one update of batch 32 every 4 environment steps).

Environment steps/s, learner updates/s and the replay ratio achieved, measured in one run for
  single-process + Reverb       the runner of common/rl/runner.py on an in-process Reverb table (appends to a
                                StructuredWriter, batches from a sampler with items in flight: common/rl/replay.py)
  single-process + ring buffer  the same runner on a plain numpy ring buffer (common/rl/ring_buffer.py): the reference
  distributed + Reverb          a Reverb server process, 1, 2 or 4 actor processes over gRPC, the learner
                                (common/rl/distributed.py): how the layout scales with its actors
Rates are medians over the logged windows after the first (which holds compilation, the replay warm-up and, when
distributed, process start-up). Every layout runs once per round, over several rounds, so each rate is compared with
the rates of its own round, measured under the same load from the other jobs of a shared machine.

python -m benchmarks.run_all --only replay      the section of docs/benchmarks.md
python -m benchmarks.replay --profile [--output docs/benchmarks.md]
                                                what each Reverb operation costs (CPU time per item, all threads)
python -m benchmarks.replay --phases [--output docs/benchmarks.md]
                                                where the thread that acts and learns spends each environment step,
                                                with Reverb and with the ring buffer
"""

from __future__ import annotations  # reverb.* annotations stay unevaluated where dm-reverb is missing

import argparse
import collections
import contextlib
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Iterator

import numpy as np
from ml_collections import ConfigDict

from common import report
from common.compat import import_reverb
from common.rl import distributed, replay, runner
from common.rl.dqn.actor import EpsilonGreedyPolicy
from common.rl.dqn.learner import Learner
from common.rl.ring_buffer import RingBufferReplay
from common.train.metrics import read_metrics
from papers.replay_fundamentals import config as paper_config

reverb = import_reverb()

ACTOR_COUNTS = (1, 2, 4)
SETTINGS = (
    ("single-process", "reverb"),
    ("single-process", "ring"),
    *((f"distributed ({n} actor{'s' if n > 1 else ''})", "reverb") for n in ACTOR_COUNTS),
)
REFERENCE = ("single-process", "ring")
TWO_ACTORS = ("distributed (2 actors)", "reverb")


def benchmark_config(mode: str, backend: str, total_updates: int):
    """The cartpole_dqn config of one layout; `mode` is "single-process" or "distributed (N actors)"."""
    config = paper_config.get_config("cartpole_dqn")
    config.replay.update(backend=backend, replay_ratio=0.25, batch_size=32, min_size_to_sample=500)
    distributed_layout = mode.startswith("distributed")
    config.run.update(
        mode="distributed" if distributed_layout else "single_process",
        total_updates=total_updates,
        log_every=max(total_updates // 2, 100),  # env steps per window: 8 windows per run at ratio 0.25
        checkpoint_every=0,
        num_actors=int(mode.split("(")[1].split()[0]) if distributed_layout else config.run.num_actors,
    )
    return config


def measure(mode: str, backend: str, total_updates: int) -> dict:
    """Median environment steps/s, updates/s and (single-process) CPU cores busy over the logged windows after the
    first, the replay ratio achieved after the warm-up (updates / (environment steps - learning_starts)), and the wall
    time."""
    config = benchmark_config(mode, backend, total_updates)
    train = distributed.train_distributed if config.run.mode == "distributed" else runner.train_single_process
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        final = train(config, workdir, log=lambda _: None)
        rows = [row for row in read_metrics(workdir) if "updates_per_second" in row]
    # One process logs at environment steps (the row's step); distributed, at updates, with the items inserted
    # (one per environment step) in the row.
    env_steps = rows[-1]["env_steps"] if "env_steps" in rows[-1] else rows[-1]["step"]
    learning_starts = config.replay.min_size_to_sample + config.agent.n_step
    cpu = [row["cpu_cores"] for row in rows[1:] if "cpu_cores" in row]  # single-process runs log it
    return {
        "env_steps_per_second": statistics.median(row["env_steps_per_second"] for row in rows[1:]),
        "cpu_cores": statistics.median(cpu) if cpu else None,
        "updates_per_second": statistics.median(row["updates_per_second"] for row in rows[1:]),
        "replay_ratio": final["updates"] / max(env_steps - learning_starts, 1),
        "windows": len(rows) - 1,
        "seconds": time.perf_counter() - started,
    }


def same_round_ratio(runs: list[dict], others: list[dict]) -> float:
    """The median over rounds of one layout's env steps/s over another's measured in the same round."""
    return statistics.median(
        run["env_steps_per_second"] / other["env_steps_per_second"] for run, other in zip(runs, others, strict=True)
    )


def markdown(total_updates: int = 2_000, rounds: int = 3) -> str:
    """The section: every layout measured once per round, in `rounds` rounds (the other jobs on a shared machine
    change the rates from one minute to the next, so each run is compared with the runs of its own round)."""
    load_before = os.getloadavg()[0]
    runs = {setting: [] for setting in SETTINGS}
    for _ in range(rounds):
        for setting in SETTINGS:
            runs[setting].append(measure(*setting, total_updates))
    reference = runs[REFERENCE]
    rows, cpu_per_step, cores_busy = [], {}, {}
    for (mode, backend), results in runs.items():
        share = same_round_ratio(results, reference)
        timed = [r for r in results if r["cpu_cores"] is not None]  # single-process runs
        busy = [r["cpu_cores"] for r in timed]
        if timed:  # CPU microseconds per environment step, all threads of the one process
            cpu_per_step[backend] = statistics.median(r["cpu_cores"] / r["env_steps_per_second"] * 1e6 for r in timed)
            cores_busy[backend] = statistics.median(busy)
        rows.append(
            [
                mode,
                backend,
                f"{statistics.median(r['env_steps_per_second'] for r in results):.0f}",
                f"{share:.0%}",
                f"{statistics.median(r['updates_per_second'] for r in results):.1f}",
                f"{statistics.median(busy):.2f}" if busy else "n/a",
                f"{cpu_per_step[backend]:.0f}" if busy else "n/a",
                f"{max(results, key=lambda r: abs(r['replay_ratio'] - 0.25))['replay_ratio']:.3f}",
                len(results),
                f"{statistics.median(r['seconds'] for r in results):.0f}",
            ]
        )
    header = [
        "layout",
        "replay",
        "env steps/s",
        "of the ring buffer's",
        "updates/s",
        "CPU cores busy",
        "CPU us / env step",
        "replay ratio (worst run)",
        "runs",
        "run (s)",
    ]
    cores = os.cpu_count() or 1
    ring_rate = statistics.median(r["env_steps_per_second"] for r in reference)
    reverb_cap = cores / cpu_per_step["reverb"] * 1e6
    single_reverb = runs[("single-process", "reverb")]
    reverb_rate = statistics.median(r["env_steps_per_second"] for r in single_reverb)
    versus_single = (
        " Distributed with 2 actors against single-process Reverb, run by run in the same round:"
        f" {same_round_ratio(runs[TWO_ACTORS], single_reverb):.2f}x (median of the {rounds} rounds' ratios)."
        if TWO_ACTORS in runs
        else ""
    )
    if reverb_rate > 0.9 * reverb_cap:  # the run is within 10% of what its CPU per step allows
        cap_reading = "a higher share needs less CPU per step, not more overlap"
    else:
        cap_reading = (
            f"the run kept {cores_busy['reverb']:.2f} cores busy, so the rest of the gap is the one thread that acts,"
            " learns, appends items and stacks batches, which sets the pace while Reverb's workers run beside it (the"
            " next-but-one table, `--phases`, times that thread's calls)"
        )
    return "\n\n".join(
        [
            "## Replay: DQN on CartPole, replay ratio 0.25",
            report.markdown_table(header, rows),
            f"{total_updates:,} updates (batch 32) per run, MLP 64-64. A run's rate is the median over its logged"
            " windows after the first; the table gives the median over runs. Every layout ran once in each of"
            f" {rounds} rounds, one after another, and a layout's share is the median over the rounds of its rate"
            f" over the ring buffer's in the same round.{versus_single} Every distributed layout adds a Reverb server"
            " process and its actor processes to the learner's: on a machine with few cores the actors share them"
            " with the learner. The replay ratio is"
            " updates / (environment steps - warm-up) over a whole run, the run furthest from 0.25 shown. CPU cores"
            " busy is the CPU time of all the process's threads per second (distributed layouts span processes: not"
            " shown). What single-process Reverb spends per environment step beyond the ring buffer"
            f" ({cpu_per_step['reverb'] - cpu_per_step['ring']:.0f} us) is its appends, its batch stacking and"
            f" Reverb's own workers; at {cpu_per_step['reverb']:.0f} us per step, {cores} cores could run it at most"
            f" {reverb_cap:.0f} environment steps/s ({reverb_cap / ring_rate:.0%} of the ring buffer's rate) with its"
            f" threads perfectly overlapped: {cap_reading}."
            f" Measured on {report.machine_description()} by `python -m benchmarks.run_all --only replay`; the"
            f" 1-minute load average was {load_before:.1f} before and {os.getloadavg()[0]:.1f} after (the cores are"
            " shared, so the rates move with other jobs).",
        ]
    )


# --- python -m benchmarks.replay --profile: the cost of each replay operation ------------------------------------


def _cpu_microseconds(operation, count: int) -> tuple[float, float]:
    """CPU time per call of `operation()` over `count` calls: (all threads, Reverb's own included; the calling
    thread alone, which in a single-process run is the one that also acts and learns)."""
    start, start_caller = time.process_time(), time.thread_time()
    for _ in range(count):
        operation()
    caller = time.thread_time() - start_caller  # read first: the caller's interval lies inside the whole one
    return (time.process_time() - start) / count * 1e6, caller / count * 1e6


def _row(operation: str, costs: tuple[float, float], per: int = 1, digits: int = 0) -> list[str]:
    """[operation, all threads, caller's thread] in CPU us per item, from costs per call of `per` items."""
    return [operation, *(f"{cost / per:.{digits}f}" for cost in costs)]


def _uniform_table(capacity: int) -> reverb.Table:
    config = {"capacity": capacity, "sampler": "uniform", "replay_ratio": 0.25, "batch_size": 32}
    return replay.make_table(ConfigDict(config | {"min_size_to_sample": 1}), single_process=True)


def _five_columns(observation: np.ndarray, next_observation: np.ndarray) -> dict[str, np.ndarray]:
    """One transition as five columns, one per ITEM_FIELDS entry (the layout before STORED_COLUMNS)."""
    return {
        "action": np.int32(1),
        "bootstrap_discount": np.float32(0.99),
        "n_step_return": np.float32(1.0),
        "next_observation": next_observation,
        "observation": observation,
    }


def _structured_writer(client: reverb.Client, num_columns: int):
    step = reverb.structured_writer.create_reference_step([None] * num_columns)
    return client.structured_writer([reverb.structured_writer.create_config([column[-1] for column in step], "replay")])


def _trajectory_dataset_batches(port: int, observation_shape, batch_size: int):
    """next-batch calls of Reverb's tf.data sampler over the table's STORED_COLUMNS, batched and prefetched by
    tf.data and read as numpy: the alternative to replay.PrefetchingDataset."""
    import tensorflow as tf

    dataset = reverb.TrajectoryDataset(
        server_address=f"localhost:{port}",
        table="replay",
        max_in_flight_samples_per_worker=2 * batch_size,
        dtypes={"observations": tf.float32, "scalars": tf.float32},
        shapes={"observations": tf.TensorShape([2, *observation_shape]), "scalars": tf.TensorShape([3])},
    )
    batches = iter(dataset.batch(batch_size, drop_remainder=True).prefetch(2))

    def next_batch():
        sample = next(batches)
        return sample.info.key.numpy(), {name: column.numpy() for name, column in sample.data.items()}

    return next_batch


def operation_costs(items: int = 3_000, observation_shape=(4,)) -> list[list[str]]:
    """[operation, CPU us per item on all threads, of it on the caller's thread] for each way of inserting and
    sampling one transition."""
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(items + 1, *observation_shape)).astype(np.float32)
    transitions = [_five_columns(observations[i], observations[i + 1]) for i in range(items)]
    rows = []

    def insert_cost(name: str, write_one, finish) -> None:
        position = iter(range(items))
        writes = _cpu_microseconds(lambda: write_one(next(position)), items)
        finished = _cpu_microseconds(finish, 1)
        rows.append(_row(f"insert: {name}", tuple(w + f / items for w, f in zip(writes, finished, strict=True))))

    def sample_cost(name: str, client: reverb.Client) -> None:
        public = iter(client.sample("replay", num_samples=items, emit_timesteps=False))
        rows.append(
            _row(f"sample: {name}, Client.sample (1 item in flight)", _cpu_microseconds(lambda: next(public), items))
        )
        sampler = replay.open_sampler(client, "replay", 64)
        costs = _cpu_microseconds(lambda: replay.next_item(sampler), items)
        rows.append(_row(f"sample: {name}, replay.open_sampler (64 in flight)", costs))

    for name, make_writer, write, finish in (
        (
            "TrajectoryWriter, append + create_item + flush(16), 5 columns",
            lambda client: client.trajectory_writer(num_keep_alive_refs=1),
            lambda writer, i: (
                writer.append(transitions[i]),
                writer.create_item("replay", 1.0, {k: v[-1] for k, v in writer.history.items()}),
                writer.flush(block_until_num_items=16),
            ),
            lambda writer: writer.flush(),
        ),
        (
            "StructuredWriter, 5 columns",
            lambda client: _structured_writer(client, 5),
            lambda writer, i: writer.append(list(transitions[i].values())),
            lambda writer: writer.flush(),
        ),
        (
            "StructuredWriter, 2 columns (replay.STORED_COLUMNS)",
            lambda client: _structured_writer(client, 2),
            lambda writer, i: writer.append(
                [np.stack([observations[i], observations[i + 1]]), np.array([1, 1.0, 0.99], np.float32)]
            ),
            lambda writer: writer.flush(),
        ),
    ):
        server = reverb.Server([_uniform_table(items)])
        client = server.localhost_client()
        writer = make_writer(client)
        insert_cost(
            name,
            lambda i, writer=writer, write=write: write(writer, i),
            lambda writer=writer, finish=finish: finish(writer),
        )
        if "TrajectoryWriter" not in name:
            sample_cost(name.split(",", 1)[1].strip(), client)
        server.stop()

    server = reverb.Server([_uniform_table(items)])
    client = server.localhost_client()
    writer = replay.NStepWriter(client, "replay", n_step=1, discount=0.99)
    writer.add_first(observations[0])
    insert_cost(
        "replay.NStepWriter.add (n-step window, StructuredWriter appends, at most 40 items unconfirmed)",
        lambda i: writer.add(1, 1.0, observations[i + 1], False, False),
        writer.flush,
    )
    dataset = replay.PrefetchingDataset(client, "replay", 32)
    costs = _cpu_microseconds(dataset.sample, items // 32)
    rows.append(_row("sample: replay.PrefetchingDataset.sample (batches of 32, 64 items in flight)", costs, 32))
    dataset.close()
    costs = _cpu_microseconds(_trajectory_dataset_batches(server.port, observation_shape, 32), items // 32)
    rows.append(_row("sample: reverb.TrajectoryDataset (tf.data, batch 32, prefetch 2)", costs, 32))
    writer.close()
    server.stop()

    ring = RingBufferReplay(items, observation_shape, batch_size=32, n_step=1, discount=0.99)
    ring.add_first(observations[0])
    insert_cost("RingBufferReplay.add", lambda i: ring.add(1, 1.0, observations[i + 1], False, False), ring.flush)
    rows.append(
        _row("sample: RingBufferReplay.sample (batches of 32)", _cpu_microseconds(ring.sample, items // 32), 32, 1)
    )
    return rows


def profile_markdown(items: int = 3_000) -> str:
    load_before = os.getloadavg()[0]
    rows = operation_costs(items)
    return "\n\n".join(
        [
            "## Replay: what each operation costs (CPU us per item)",
            report.markdown_table(["operation", "CPU us / item, all threads", "of it on the caller's thread"], rows),
            f"{items:,} CartPole transitions (observations [4] float32) into and out of an in-process table. Measured"
            f" on {report.machine_description()} by `python -m benchmarks.replay --profile`; the 1-minute load average"
            f" was {load_before:.1f} before and {os.getloadavg()[0]:.1f} after.",
        ]
    )


# --- python -m benchmarks.replay --phases: where the acting-and-learning thread's time goes ---------------------

# (phase, the methods timed as it): every call the single-process runner's one thread makes into acting, replay and
# learning. What is left of a step (the environment, the runner's bookkeeping) is the last row.
PHASES = (
    ("act: EpsilonGreedyPolicy.select_action", ((EpsilonGreedyPolicy, "select_action"),)),
    ("insert: replay add (window, item, append)", ((replay.ReverbReplay, "add"), (RingBufferReplay, "add"))),
    ("sample: replay sample (a batch)", ((replay.ReverbReplay, "sample"), (RingBufferReplay, "sample"))),
    ("learn: Learner.update (dispatch of the jitted step)", ((Learner, "update"),)),
)
REST_OF_STEP = "the rest: environment step, runner (and start-up, compilation)"  # the row after PHASES
WHOLE_STEP = "whole environment step"  # the last row


@contextlib.contextmanager
def _timed_methods(totals: dict) -> Iterator[None]:
    """Wraps every PHASES method so that each call adds its wall and calling-thread CPU seconds to
    totals[phase] = [wall, cpu]."""

    def timed(function, phase):
        @functools.wraps(function)
        def call(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                totals[phase][1] += time.thread_time() - cpu
                totals[phase][0] += time.perf_counter() - wall

        return call

    originals = [(owner, name, owner.__dict__[name]) for _, methods in PHASES for owner, name in methods]
    try:
        for phase, methods in PHASES:
            for owner, name in methods:
                setattr(owner, name, timed(owner.__dict__[name], phase))
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def phase_costs(backend: str, total_updates: int) -> dict[str, tuple[float, float]]:
    """{phase: (wall us, CPU us of the calling thread)} per environment step of one single-process run, the whole
    step and the rest of it (environment, bookkeeping) included; the timers' own cost (about 1 us a call) is in."""
    config = benchmark_config("single-process", backend, total_updates)
    totals = collections.defaultdict(lambda: [0.0, 0.0])
    with tempfile.TemporaryDirectory() as workdir, _timed_methods(totals):
        wall, cpu = time.perf_counter(), time.thread_time()
        final = runner.train_single_process(config, workdir, log=lambda _: None)
        whole = (time.perf_counter() - wall, time.thread_time() - cpu)
    steps = final["env_steps"]
    costs = {phase: (totals[phase][0] / steps * 1e6, totals[phase][1] / steps * 1e6) for phase, _ in PHASES}
    rest = [whole[i] / steps * 1e6 - sum(cost[i] for cost in costs.values()) for i in range(2)]
    costs[REST_OF_STEP] = tuple(rest)
    costs[WHOLE_STEP] = (whole[0] / steps * 1e6, whole[1] / steps * 1e6)
    return costs


def phases_markdown(total_updates: int = 4_000, rounds: int = 3) -> str:
    """The table: per phase, the median over `rounds` back-to-back pairs of runs (Reverb, then the ring buffer)."""
    load_before = os.getloadavg()[0]
    runs = {"reverb": [], "ring": []}
    for _ in range(rounds):
        for backend in runs:
            runs[backend].append(phase_costs(backend, total_updates))
    median = {
        backend: {phase: [statistics.median(run[phase][i] for run in costs) for i in range(2)] for phase in costs[0]}
        for backend, costs in runs.items()
    }
    rows = [
        [phase, *(f"{median[backend][phase][i]:.0f}" for backend in runs for i in range(2))]
        for phase in median["reverb"]
    ]
    return "\n\n".join(
        [
            "## Replay: where the thread that acts and learns spends an environment step (us)",
            report.markdown_table(
                ["phase", "Reverb: wall", "Reverb: CPU", "ring buffer: wall", "ring buffer: CPU"], rows
            ),
            f"Single-process DQN on CartPole at replay ratio 0.25, batch 32, {total_updates:,} updates a run (one"
            " update per 4 environment steps, so a batch's sample and update count a quarter per step), the median"
            f" of {rounds} back-to-back pairs of runs. Wall is the time spent in the calls; CPU is that thread's own"
            " CPU time in them, so wall beyond CPU is the thread waiting: for items, for the device, for a core"
            " taken by another thread. The same calls into JAX (act, learn) are the same work with either replay;"
            " what they cost beyond it with Reverb is the price of sharing two cores with Reverb's workers."
            f" Measured on {report.machine_description()} by `python -m benchmarks.replay --phases`; the 1-minute"
            f" load average was {load_before:.1f} before and {os.getloadavg()[0]:.1f} after.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="store_true", help="the cost of each replay operation, not the runs")
    parser.add_argument("--phases", action="store_true", help="the acting-and-learning thread's time, by phase")
    parser.add_argument("--updates", type=int, default=2_000, help="updates per run (without --profile)")
    parser.add_argument("--output", help="with --profile or --phases: also write the table into the file's block")
    arguments = parser.parse_args()
    if arguments.profile and arguments.phases:
        parser.error("--profile and --phases are two separate measurements: give one")
    if arguments.profile:
        text, block = profile_markdown(), "replay_profile"
    elif arguments.phases:
        text, block = phases_markdown(), "replay_phases"
    else:
        text, block = markdown(arguments.updates), None
    print(text)
    if block and arguments.output:
        report.replace_block(arguments.output, block, text)
