"""The results cache that makes a search resumable: one JSON line per evaluated candidate, appended as it finishes.

Rows are keyed by the candidate's readable name and a budget string (whatever else the score depends on: child
model, data, steps, seed), so a killed search skips what it has, and a changed budget evaluates everything again.
A row is `{"budget": ..., **Evaluation}`; files written by earlier searches keep loading as long as these field
names stay.
"""

import dataclasses
import json
import os

from common.train.metrics import read_metrics


@dataclasses.dataclass
class Evaluation:
    """One candidate's outcome: a validation accuracy, or the reason it was not trained."""

    name: str
    spec: str
    accuracy: float | None
    rejected: str | None = None
    diverged: bool = False
    seconds: float = 0.0

    @property
    def reward(self) -> float:
        """What a search maximises: the accuracy; 0 for a rejected or diverged candidate."""
        return self.accuracy or 0.0


class ResultsCache:
    """A JSON-lines file of Evaluations for one budget; rows of other budgets are kept in the file and ignored."""

    def __init__(self, path: str, budget: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.budget = budget
        self.entries: dict[str, Evaluation] = {}
        if os.path.exists(path):
            for row in read_metrics(path):  # any JSON-lines file, not only metrics.jsonl
                if row.pop("budget") == budget:
                    self.entries[row["name"]] = Evaluation(**row)

    def get(self, name: str) -> Evaluation | None:
        return self.entries.get(name)

    def add(self, evaluation: Evaluation) -> None:
        self.entries[evaluation.name] = evaluation
        with open(self.path, "a") as f:
            f.write(json.dumps({"budget": self.budget, **dataclasses.asdict(evaluation)}) + "\n")

    def __len__(self) -> int:
        return len(self.entries)
