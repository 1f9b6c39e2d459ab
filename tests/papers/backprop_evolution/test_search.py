"""The equation search: a killed search resumes from its results cache; the smoke search runs end to end."""

import pytest

from common.search.child import ChildResult
from papers.backprop_evolution import search, search_space
from papers.backprop_evolution.config import get_config


def _config(num_candidates=16):
    config = get_config("search_smoke")
    config.search.update(population_size=6, sample_size=3, num_candidates=num_candidates)
    return config


class FakeTrainer:
    """A child's 'accuracy' is a fixed function of its name; counts the children it trains; can die after `limit`."""

    def __init__(self, limit=None):
        self.trained = []
        self.limit = limit

    def __call__(self, candidates, config, dataset):
        if self.limit is not None and len(self.trained) + len(candidates) > self.limit:
            raise KeyboardInterrupt("killed")
        names = [search_space.readable_name(c) for c in candidates]
        self.trained += names
        return [ChildResult((sum(map(ord, n)) % 97) / 97, diverged=False, seconds=0.0) for n in names]


def _run(config, workdir, trainer):
    return search.run(config, str(workdir), trainer=trainer, load_dataset=lambda config: None)


def test_killed_search_resumes_from_its_cache(tmp_path):
    straight = FakeTrainer()
    expected = _run(_config(), tmp_path / "straight", straight)
    assert expected["trained"] > 4 and sum(expected["rejected"].values()) > 0

    killed = FakeTrainer(limit=6)
    with pytest.raises(KeyboardInterrupt):
        _run(_config(), tmp_path / "killed", killed)
    assert len(killed.trained) == 6
    resumed = FakeTrainer()
    summary = _run(_config(), tmp_path / "killed", resumed)
    assert not set(resumed.trained) & set(killed.trained)  # nothing trained twice
    assert len(killed.trained) + len(resumed.trained) == len(straight.trained)
    for key in ("candidates", "distinct", "trained", "rejected", "best", "best_accuracy", "backprop_rank"):
        assert summary[key] == expected[key], key
    assert (tmp_path / "killed" / "results.jsonl").read_text().count("\n") == len(
        (tmp_path / "straight" / "results.jsonl").read_text().splitlines()
    )


def test_a_changed_budget_evaluates_again(tmp_path):
    first = FakeTrainer()
    _run(_config(10), tmp_path, first)
    again = FakeTrainer()
    _run(_config(10), tmp_path, again)
    assert again.trained == []
    config = _config(10)
    config.train.num_steps = 11
    changed = FakeTrainer()
    _run(config, tmp_path, changed)
    assert changed.trained == first.trained


@pytest.mark.slow
def test_smoke_search_trains_real_children_and_writes_the_ranking(tmp_path):
    readme = tmp_path / "README.md"
    summary = search.run(get_config("search_smoke"), str(tmp_path / "search"), str(readme))
    assert summary["candidates"] == 5 and summary["backprop_accuracy"] > 0.2
    text = readme.read_text()
    assert "<!-- search:start -->" in text and "dact * g" in text and "(backprop)" in text
    assert (tmp_path / "search_progress.png").exists()
    assert (tmp_path / "search" / "ranking.md").exists()
