"""Regularised (aging) evolution (Real et al. 2019), and random search over the same vocabulary as its baseline.

A population of `population_size` candidates starts uniformly random. Each cycle draws `sample_size` of them (with
replacement, as in the paper), takes the best of the draw as the parent and adds its mutation (one decision
changed: a binary, a unary or an input, so the child is always valid) as the youngest member; the oldest dies,
however good it was. The search ends when `num_candidates` candidates, the initial population included (the
paper's C), have been evaluated.

Everything random comes from one numpy generator seeded by `seed`, and the rest from the rewards. So with a
cache-backed `evaluate` (common.search.evaluator.Evaluator.rewards), a killed search rerun with the same seed
replays its cycles from the cache and continues with the first candidate it had not evaluated.
"""

import collections
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from common.search import expressions

Evaluate = Callable[[Sequence[expressions.Candidate]], Sequence[float]]  # candidates -> one reward each


@dataclasses.dataclass(frozen=True)
class Individual:
    candidate: expressions.Candidate
    reward: float


def regularized_evolution(
    vocabulary: expressions.Vocabulary,
    evaluate: Evaluate,
    *,
    population_size: int,
    sample_size: int,
    num_candidates: int,
    seed: int,
    initial: Callable[[np.random.Generator], list[expressions.Candidate]] | None = None,
) -> list[Individual]:
    """Every evaluated individual in evaluation order (the initial population first); higher reward is better.

    initial: rng -> the initial population (population_size candidates, drawn from the search's generator so a
    resumed search replays it); None: uniformly random ones."""
    if not 1 <= sample_size <= population_size <= num_candidates:
        raise ValueError(
            "need 1 <= sample_size <= population_size <= num_candidates, got "
            f"sample_size={sample_size}, population_size={population_size}, num_candidates={num_candidates}"
        )
    rng = np.random.default_rng(seed)
    if initial is None:
        population = [vocabulary.sample(rng) for _ in range(population_size)]
    else:
        population = [vocabulary.language.validate(c) for c in initial(rng)]
        if len(population) != population_size:
            raise ValueError(f"initial gave {len(population)} candidates for a population of {population_size}")
    history = _scored(population, evaluate)
    population = collections.deque(history)
    while len(history) < num_candidates:
        tournament = [population[i] for i in rng.integers(len(population), size=sample_size)]
        parent = max(tournament, key=lambda individual: individual.reward)  # the first of equals
        (child,) = _scored([vocabulary.mutate(parent.candidate, rng)], evaluate)
        population.append(child)
        population.popleft()  # the oldest dies
        history.append(child)
    return history


def random_search(
    vocabulary: expressions.Vocabulary, evaluate: Evaluate, *, num_candidates: int, seed: int
) -> list[Individual]:
    """`num_candidates` uniformly random candidates, evaluated in one call; the baseline evolution must beat."""
    rng = np.random.default_rng(seed)
    return _scored([vocabulary.sample(rng) for _ in range(num_candidates)], evaluate)


def _scored(candidates: list[expressions.Candidate], evaluate: Evaluate) -> list[Individual]:
    rewards = evaluate(candidates)
    if len(rewards) != len(candidates):
        raise ValueError(f"evaluate returned {len(rewards)} rewards for {len(candidates)} candidates")
    return [Individual(c, float(r)) for c, r in zip(candidates, rewards, strict=True)]
