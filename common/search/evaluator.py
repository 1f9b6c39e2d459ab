"""Scoring candidates through the results cache: degenerate ones are rejected with a reason, the rest train in
groups, and every result is cached the moment its group finishes, so each distinct name is trained at most once.

A search wraps its loop in `evaluator.progress(total)` for a progress bar with an ETA over the candidates it will
propose; cached and rejected candidates advance it at once, trained ones when their group finishes.
"""

import contextlib
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from common.search import expressions
from common.search.cache import Evaluation, ResultsCache
from common.search.child import ChildResult

Trainer = Callable[[list[expressions.Candidate]], list[ChildResult]]
Check = Callable[[expressions.Candidate], str | None]


class Evaluator:
    """Candidates -> Evaluations: from the cache, else rejected by `check`, else trained `group_size` at a time."""

    def __init__(
        self,
        language: expressions.Language,
        cache: ResultsCache,
        train: Trainer,
        *,
        check: Check | None = None,
        group_size: int = 1,
    ):
        if group_size < 1:
            raise ValueError(f"group_size must be at least 1, got {group_size}")
        self.language = language
        self.cache = cache
        self.train = train
        self.check = check
        self.group_size = int(group_size)
        self.children_trained = 0
        self._bar = None

    def evaluate(self, candidates: Sequence[expressions.Candidate]) -> list[Evaluation]:
        """One Evaluation per candidate, in order; each distinct name is trained at most once, ever."""
        names = [self.language.readable_name(c) for c in candidates]
        to_train: dict[str, expressions.Candidate] = {}
        for name, candidate in zip(names, candidates, strict=True):
            if self.cache.get(name) is not None or name in to_train:
                continue
            reason = None if self.check is None else self.check(candidate)
            if reason is not None:
                self.cache.add(Evaluation(name, self.language.to_spec(candidate), None, rejected=reason))
            else:
                to_train[name] = candidate
        self._advance(len(candidates) - len(to_train))
        pending = list(to_train.items())
        for start in range(0, len(pending), self.group_size):
            group = pending[start : start + self.group_size]
            results = self.train([candidate for _, candidate in group])
            self.children_trained += len(group)
            for (name, candidate), result in zip(group, results, strict=True):
                evaluation = Evaluation(
                    name,
                    self.language.to_spec(candidate),
                    result.accuracy,
                    diverged=result.diverged,
                    seconds=result.seconds,
                )
                self.cache.add(evaluation)
                tqdm.write(f"  {evaluation.accuracy:.4f}  {name}{'  (diverged)' if result.diverged else ''}")
            self._advance(len(group))
        return [self.cache.get(name) for name in names]

    def rewards(self, candidates: Sequence[expressions.Candidate]) -> list[float]:
        """The searches' view: one reward per candidate (0 for a rejected or diverged one)."""
        return [evaluation.reward for evaluation in self.evaluate(candidates)]

    @contextlib.contextmanager
    def progress(self, total: int, description: str = "search"):
        """A progress bar with an ETA over the `total` candidates the search inside will propose."""
        with tqdm(
            total=total, desc=description, unit="candidate", dynamic_ncols=True, mininterval=1.0, smoothing=0.1
        ) as bar:
            self._bar = bar
            try:
                yield bar
            finally:
                self._bar = None

    def _advance(self, count: int) -> None:
        if self._bar is not None and count:
            self._bar.update(count)


def ranking(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """Trained candidates (each once), best validation accuracy first."""
    unique = {e.name: e for e in evaluations if e.accuracy is not None}
    return sorted(unique.values(), key=lambda e: -e.accuracy)
