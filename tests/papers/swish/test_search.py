"""The activation search: the PPO controller, the results cache and resuming, and a whole tiny search."""

import hashlib
import json
import zlib

import jax
import numpy as np
import pytest

from common.search import controller
from papers.swish import child, config, search, search_space

SWISH = search_space.from_spec("search:sigmoid_mul.0.beta_mul.0.x")


class CountingTrainer:
    """Stands in for child training: a fixed pseudo-accuracy per name; counts children; can die after `fail_after`."""

    def __init__(self, fail_after: int | None = None):
        self.trained: list[str] = []
        self.fail_after = fail_after

    def __call__(self, candidates, config, dataset):
        results = []
        for candidate in candidates:
            if self.fail_after is not None and len(self.trained) >= self.fail_after:
                raise KeyboardInterrupt("killed")
            name = search_space.readable_name(candidate)
            self.trained.append(name)
            results.append(child.ChildResult(zlib.crc32(name.encode()) % 1000 / 1000, False, 0.0))
        return results


def small_config(method: str):
    cfg = config.get_config("search_smoke")
    cfg.search.method = method
    cfg.search.update(binaries=["add", "mul", "sub", "sigmoid_mul"], unaries=["x", "beta_mul", "sigmoid", "sin"])
    cfg.search.group_size = 3
    return cfg


def test_ppo_update_raises_the_probability_of_the_rewarded_candidate():
    vocabulary = search_space.vocabulary(search_space.BINARY, search_space.UNARY, 1)
    trainer = controller.PPOTrainer(vocabulary, seed=0, learning_rate=1e-2)
    actions, log_probs = trainer.sample(6)
    target = SWISH
    actions[0] = vocabulary.encode(target)  # put the rewarded candidate into the batch
    log_probs[0] = trainer.log_probability(target)
    before = trainer.log_probability(target)
    others_before = [trainer.log_probability(vocabulary.decode(a)) for a in actions[1:]]
    rewards = np.array([1.0, 0, 0, 0, 0, 0])
    trainer.update(actions, log_probs, rewards)
    assert trainer.log_probability(target) > before + 0.1
    others_after = [trainer.log_probability(vocabulary.decode(a)) for a in actions[1:]]
    assert np.mean(others_after) < np.mean(others_before)
    # the baseline is an exponential moving average of the rewards
    assert trainer.baseline == pytest.approx(0.9 * (1 / 6) + 0.1 * (1 / 6))


def test_controller_samples_only_valid_inputs():
    vocabulary = search_space.vocabulary(("add", "mul"), ("x", "sin"), 3)
    trainer = controller.PPOTrainer(vocabulary, seed=1)
    actions, log_probs = trainer.sample(64)
    assert actions.shape == (64, 15) and log_probs.shape == (64,)
    for row in actions:
        candidate = vocabulary.decode(row)  # validates: unit i reads x or units < i
        np.testing.assert_array_equal(vocabulary.encode(candidate), row)
    inputs_of_unit_3 = actions[:, [11, 12]]
    assert set(np.unique(inputs_of_unit_3)) == {0, 1, 2}  # all allowed choices occur, none beyond


# The controller's seed-0 samples (before one update, the third one's name, after it), by the PRNG's
# `jax_threefry_partitionable` flag: JAX 0.5 turned it on, which changes every random draw (the current stack).
RECORDED_SAMPLES = {
    False: (
        [[7, 0, 0, 21, 9, 0, 1, 0, 7, 0], [6, 0, 0, 20, 15, 2, 1, 1, 11, 20], [0, 0, 0, 2, 9, 6, 0, 0, 6, 22],
         [6, 0, 0, 14, 16, 6, 1, 0, 16, 9]],
        "sigmoid(beta * x) * exp(-x^2)",
        [[1, 0, 0, 17, 4, 2, 0, 1, 14, 8], [7, 0, 0, 12, 20, 4, 1, 1, 21, 9], [0, 0, 0, 0, 11, 0, 1, 0, 21, 3],
         [8, 0, 0, 11, 16, 6, 1, 0, 19, 12]],
    ),
    True: (
        [[9, 0, 0, 4, 15, 5, 1, 1, 16, 5], [8, 0, 0, 23, 23, 2, 1, 1, 3, 0], [6, 0, 0, 9, 2, 7, 0, 1, 23, 15],
         [6, 0, 0, 16, 0, 2, 0, 0, 15, 14]],
        "exp(-beta * (erf(x) - asinh(sigmoid(exp(x)) * |x|))^2)",
        [[1, 0, 0, 7, 20, 0, 0, 0, 10, 10], [3, 0, 0, 17, 19, 0, 1, 1, 9, 24], [2, 0, 0, 19, 7, 0, 1, 0, 24, 19],
         [7, 0, 0, 22, 5, 3, 0, 1, 24, 16]],
    ),
}  # fmt: skip


def test_candidates_and_controller_samples_are_the_recorded_ones():
    """Recorded values: the full one-unit enumeration (order, names, specs) and the controller's samples for seed 0,
    before and after one update. A change here invalidates existing results caches and controller replays."""
    candidates = search.one_unit_candidates(list(search_space.BINARY), list(search_space.UNARY))
    rows = [f"{search_space.readable_name(c)}\t{search_space.to_spec(c)}" for c in candidates]
    assert len(rows) == 5040
    assert [row.split("\t")[0] for row in rows[:5]] == ["x + x", "-x + x", "x + |x|", "x + x^2", "x + x^3"]
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    assert digest == "8d0b1c3ede4f9baaa1fd5cbde7db7768635ce46af131ccb11bd9f074b4ebce35"

    before, third_name, after = RECORDED_SAMPLES[bool(jax.config.jax_threefry_partitionable)]
    vocabulary = search_space.vocabulary(search_space.BINARY, search_space.UNARY, 2)
    trainer = controller.PPOTrainer(vocabulary, seed=0)
    actions, log_probs = trainer.sample(4)
    np.testing.assert_array_equal(actions, before)
    assert search_space.readable_name(vocabulary.decode(actions[2])) == third_name
    trainer.update(actions, log_probs, np.array([0.5, 0.1, 0.9, 0.3]))
    np.testing.assert_array_equal(trainer.sample(4)[0], after)


def test_exhaustive_search_enumerates_distinct_functions():
    candidates = search.one_unit_candidates(["add", "sub"], ["x", "sin"])
    names = [search_space.readable_name(c) for c in candidates]
    # add: x+x, sin(x)+x (= x+sin(x)), sin(x)+sin(x); sub: all four orders
    assert len(names) == len(set(names)) == 7


def test_killed_exhaustive_search_resumes_without_retraining(tmp_path):
    cfg = small_config("exhaustive")
    total = len(search.one_unit_candidates(cfg.search.binaries, cfg.search.unaries))
    dying = CountingTrainer(fail_after=7)
    with pytest.raises(KeyboardInterrupt):
        search.exhaustive_search(cfg, search.Evaluator(cfg, str(tmp_path), dying, dataset="unused"))
    cached = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    saved = {row["name"] for row in cached if row["rejected"] is None}
    assert saved == set(dying.trained[:6])  # two whole groups of 3 were saved; the third died with its group

    resumed = CountingTrainer()
    evaluations = search.exhaustive_search(cfg, search.Evaluator(cfg, str(tmp_path), resumed, dataset="unused"))
    assert not saved & set(resumed.trained)
    rejected = {e.name for e in evaluations if e.rejected}
    assert len(saved) + len(resumed.trained) + len(rejected) == total
    assert "x - x" in rejected

    again = CountingTrainer()
    search.exhaustive_search(cfg, search.Evaluator(cfg, str(tmp_path), again, dataset="unused"))
    assert again.trained == []
    # another budget is another cache key: everything trains again
    cfg.train.num_steps += 1
    other_budget = CountingTrainer()
    search.exhaustive_search(cfg, search.Evaluator(cfg, str(tmp_path), other_budget, dataset="unused"))
    assert len(other_budget.trained) == len(saved) + len(resumed.trained)


def test_killed_controller_search_replays_to_the_same_result(tmp_path):
    cfg = small_config("controller")
    cfg.search.update(num_units=1, iterations=2, candidates_per_iteration=4)
    straight = CountingTrainer()
    straight_results = search.controller_search(
        cfg, search.Evaluator(cfg, str(tmp_path / "straight"), straight, dataset="unused")
    )
    dying = CountingTrainer(fail_after=len(straight.trained) // 2)
    with pytest.raises(KeyboardInterrupt):
        search.controller_search(cfg, search.Evaluator(cfg, str(tmp_path / "killed"), dying, dataset="unused"))
    rows = [json.loads(line) for line in (tmp_path / "killed" / "results.jsonl").read_text().splitlines()]
    saved = [row["name"] for row in rows if row["rejected"] is None]
    assert 0 < len(saved) < len(straight.trained)
    resumed = CountingTrainer()
    resumed_results = search.controller_search(
        cfg, search.Evaluator(cfg, str(tmp_path / "killed"), resumed, dataset="unused")
    )
    assert [e.name for e in resumed_results] == [e.name for e in straight_results]
    assert sorted(saved + resumed.trained) == sorted(straight.trained)  # nothing trained twice, nothing missing


def test_unknown_search_method_lists_the_choices(tmp_path):
    cfg = small_config("evolution")
    with pytest.raises(ValueError, match="unknown search method 'evolution'; valid choices: controller, exhaustive"):
        search.run(cfg, str(tmp_path), trainer=CountingTrainer())


@pytest.mark.long
@pytest.mark.slow
def test_search_smoke_runs_a_complete_search_and_writes_its_report(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nkept text\n\n<!-- search:start -->\nold\n<!-- search:end -->\n\ntail\n")
    cfg = config.get_config("search_smoke")
    summary = search.run(cfg, str(tmp_path / "work"), str(readme), "python -m papers.swish.search (test)")
    assert summary["trained"] >= 1 and summary["trained_this_run"] == summary["trained"]
    assert summary["candidates"] == summary["trained"] + summary["rejected"]
    rows = [json.loads(line) for line in (tmp_path / "work" / "results.jsonl").read_text().splitlines()]
    trained = [row for row in rows if row["accuracy"] is not None]
    assert len(trained) == summary["trained"]
    assert max(row["accuracy"] for row in trained) > 0.15  # 10 digit classes after 10 steps: above chance (0.1)
    assert set(summary["retrain"]) == {"relu", summary["best"]}
    text = readme.read_text()
    assert "kept text" in text and text.rstrip().endswith("<!-- search_retrain:end -->") and "tail" in text
    assert "old" not in text and summary["best"] in text
    assert (tmp_path / "search_functions.png").stat().st_size > 0
    assert (tmp_path / "search_retrain.png").stat().st_size > 0
