"""The results cache and the cached evaluator: rejection with reasons, groups, each name trained once, budgets."""

import json

from common.search import evaluator
from common.search.cache import Evaluation, ResultsCache
from common.search.child import ChildResult
from tests.common.search import toy

CANDIDATES = [
    toy.LANGUAGE.from_spec(spec)
    for spec in [
        "toy:add.0.id.1.id",
        "toy:sub.0.id.0.id",
        "toy:add.1.id.0.id",
        "toy:mul.0.id.1.neg",
        "toy:sub.1.id.0.id",
    ]
]


class GroupTrainer:
    def __init__(self):
        self.groups = []

    def __call__(self, candidates):
        self.groups.append([toy.LANGUAGE.readable_name(c) for c in candidates])
        return [ChildResult(0.1 * len(self.groups), False, 1.5) for _ in candidates]


def reject_constants(candidate):
    return "constant: a - a" if toy.LANGUAGE.to_spec(candidate) == "toy:sub.0.id.0.id" else None


def test_rejects_trains_in_groups_and_caches_every_name_once(tmp_path):
    path = str(tmp_path / "results.jsonl")
    trainer = GroupTrainer()
    scorer = evaluator.Evaluator(toy.LANGUAGE, ResultsCache(path, "b1"), trainer, check=reject_constants, group_size=2)
    with scorer.progress(len(CANDIDATES)):
        evaluations = scorer.evaluate(CANDIDATES)
    # `b + a` is `a + b` (commutative): one name, trained once
    assert trainer.groups == [["a + b", "-b * a"], ["b - a"]]
    assert [e.name for e in evaluations] == ["a + b", "a - a", "a + b", "-b * a", "b - a"]
    assert [e.reward for e in evaluations] == [0.1, 0.0, 0.1, 0.1, 0.2]
    assert evaluations[1].rejected == "constant: a - a" and evaluations[1].accuracy is None
    assert scorer.children_trained == 3
    assert evaluator.ranking(evaluations)[0].name == "b - a"

    rows = [json.loads(line) for line in open(path)]
    assert rows[0] == {"budget": "b1", "name": "a - a", "spec": "toy:sub.0.id.0.id", "accuracy": None,
                       "rejected": "constant: a - a", "diverged": False, "seconds": 0.0}  # fmt: skip
    again = GroupTrainer()
    reloaded = ResultsCache(path, "b1")
    assert len(reloaded) == 4 and reloaded.get("b - a") == Evaluation("b - a", "toy:sub.1.id.0.id", 0.2, seconds=1.5)
    assert evaluator.Evaluator(toy.LANGUAGE, reloaded, again).rewards(CANDIDATES) == [0.1, 0.0, 0.1, 0.1, 0.2]
    assert again.groups == []
    other_budget = GroupTrainer()
    evaluator.Evaluator(toy.LANGUAGE, ResultsCache(path, "b2"), other_budget, group_size=5).evaluate(CANDIDATES)
    assert other_budget.groups == [["a + b", "a - a", "-b * a", "b - a"]]
