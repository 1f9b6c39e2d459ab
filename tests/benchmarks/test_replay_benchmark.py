"""The replay benchmark's measurement path at a tiny size (the numbers themselves live in docs/benchmarks.md)."""

import os

import pytest

from benchmarks import replay

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed


def test_measure_reads_rates_from_the_runs_metrics():
    result = replay.measure("single-process", "ring", total_updates=200)
    assert result["windows"] >= 5  # 1,301 environment steps logged every 100, the first window dropped
    assert result["env_steps_per_second"] > 0 and result["updates_per_second"] > 0
    assert 0 < result["cpu_cores"] <= 1.1 * os.cpu_count()  # all threads' CPU seconds per wall second
    assert abs(result["replay_ratio"] / 0.25 - 1) < 0.05
    for actors in replay.ACTOR_COUNTS:
        label = f"distributed ({actors} actor{'s' if actors > 1 else ''})"
        assert (label, "reverb") in replay.SETTINGS
        config = replay.benchmark_config(label, "reverb", 200)
        assert (config.run.mode, config.run.num_actors, config.replay.replay_ratio) == ("distributed", actors, 0.25)


def test_the_profile_prices_every_insert_and_sample_path():
    rows = replay.operation_costs(items=96)
    operations = [operation for operation, _, _ in rows]
    assert sum(op.startswith("insert: ") for op in operations) == 5
    assert sum(op.startswith("sample: ") for op in operations) == 7  # tf.data included
    assert all(float(total) > 0 for _, total, _ in rows)
    assert all(0 <= float(caller) <= float(total) for _, total, caller in rows)  # the caller's share of the whole


@pytest.mark.parametrize("backend", ["reverb", "ring"])
def test_the_phases_time_every_call_of_the_acting_and_learning_thread(backend):
    costs = replay.phase_costs(backend, total_updates=100)
    phases = [phase for phase, _ in replay.PHASES]
    assert list(costs) == [*phases, replay.REST_OF_STEP, replay.WHOLE_STEP]
    assert all(costs[phase][0] > 0 and costs[phase][1] > 0 for phase in phases)  # each phase was called and timed
    whole = costs[replay.WHOLE_STEP]
    assert sum(costs[phase][0] for phase in phases) < whole[0]  # the phases lie inside the run's wall time
    assert all(
        owner.__dict__[name].__name__ == name and not hasattr(owner.__dict__[name], "__wrapped__")
        for _, methods in replay.PHASES
        for owner, name in methods
    )  # the timers are gone afterwards


def test_same_round_ratio_is_the_median_of_ratios_within_rounds():
    rates = [{"env_steps_per_second": r} for r in (100.0, 300.0, 200.0)]
    others = [{"env_steps_per_second": r} for r in (50.0, 150.0, 400.0)]
    assert replay.same_round_ratio(rates, others) == 2.0  # ratios 2, 2, 0.5 (the medians' ratio: 200 / 150)
    assert replay.same_round_ratio(rates[2:], others[2:]) == 0.5
