"""Regularised evolution on a toy fitness: it finds the optimum that random search misses on the same budget,
and a killed evolution resumes from the results cache to the same history without re-evaluating anything."""

import numpy as np
import pytest

from common.search import evaluator, evolution
from common.search.cache import ResultsCache
from common.search.child import ChildResult
from tests.common.search import toy

VOCABULARY = toy.vocabulary(2)  # 3 binaries, 4 unaries, operands a and b: 82,944 candidates
TARGET = VOCABULARY.encode(toy.LANGUAGE.from_spec("toy:sub.1.square.0.scale+mul.2.neg.1.id"))


def fitness(candidates):
    """The fraction of decisions that agree with TARGET's: 1 only for TARGET itself."""
    return [float(np.mean(VOCABULARY.encode(c) == TARGET)) for c in candidates]


def first_optimum(history) -> int | None:
    """How many evaluations it took to see the optimum, or None."""
    return next((i + 1 for i, individual in enumerate(history) if individual.reward == 1.0), None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evolution_finds_the_optimum_that_random_search_misses(seed):
    budget = 400
    evolved = evolution.regularized_evolution(
        VOCABULARY, fitness, population_size=20, sample_size=5, num_candidates=budget, seed=seed
    )
    random = evolution.random_search(VOCABULARY, fitness, num_candidates=budget, seed=seed)
    assert len(evolved) == len(random) == budget
    found = first_optimum(evolved)
    assert found is not None and found < budget
    assert first_optimum(random) is None and max(i.reward for i in random) <= 0.8


def test_every_child_is_one_mutation_of_a_living_member():
    calls = []

    def recorded(candidates):
        calls.append(len(candidates))
        return fitness(candidates)

    history = evolution.regularized_evolution(
        VOCABULARY, recorded, population_size=4, sample_size=4, num_candidates=10, seed=0
    )
    assert calls == [4] + [1] * 6  # the initial population at once, then one child per cycle
    # the population alive at cycle i is the last 4 evaluated (the oldest died); the child differs from one of
    # them in exactly one decision
    for index in range(4, 10):
        child = VOCABULARY.encode(history[index].candidate)
        distances = [(child != VOCABULARY.encode(i.candidate)).sum() for i in history[index - 4 : index]]
        assert min(distances) == 1, distances


class ToyTrainer:
    """Scores candidates by `fitness`, counting them; raises after `fail_after` children, like a killed search."""

    def __init__(self, fail_after: int | None = None):
        self.trained = []
        self.fail_after = fail_after

    def __call__(self, candidates):
        if self.fail_after is not None and len(self.trained) + len(candidates) > self.fail_after:
            raise KeyboardInterrupt("killed")
        self.trained += [toy.LANGUAGE.readable_name(c) for c in candidates]
        return [ChildResult(score, False, 0.0) for score in fitness(candidates)]


def run(workdir, trainer):
    cached = evaluator.Evaluator(toy.LANGUAGE, ResultsCache(str(workdir / "results.jsonl"), "toy"), trainer)
    return evolution.regularized_evolution(
        VOCABULARY, cached.rewards, population_size=10, sample_size=3, num_candidates=80, seed=3
    )


def test_killed_evolution_resumes_from_the_cache_to_the_same_history(tmp_path):
    straight_trainer = ToyTrainer()
    straight = run(tmp_path / "straight", straight_trainer)
    dying = ToyTrainer(fail_after=len(straight_trainer.trained) // 2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", dying)
    assert 10 < len(dying.trained) < len(straight_trainer.trained)
    resumed_trainer = ToyTrainer()
    resumed = run(tmp_path / "killed", resumed_trainer)
    assert resumed == straight
    assert not set(dying.trained) & set(resumed_trainer.trained)  # nothing evaluated twice
    assert sorted(dying.trained + resumed_trainer.trained) == sorted(straight_trainer.trained)


def test_bad_sizes_name_the_values():
    with pytest.raises(ValueError, match="sample_size=5, population_size=4"):
        evolution.regularized_evolution(VOCABULARY, fitness, population_size=4, sample_size=5, num_candidates=8, seed=0)
