"""The SVPG report's reading of runs: the best agent, when it reaches 95% of its return, and the table."""

import numpy as np
from ml_collections import ConfigDict

from papers.svpg import reproduce


def test_best_agent_is_the_best_late_mean_and_reached_when_its_window_mean_gets_to_95_percent():
    # agent 1 climbs 0, 10, ..., 90 then holds 100; agent 0 stays at 50
    climb = np.concatenate([np.arange(0, 100, 10), np.full(10, 100.0)])
    particles = np.stack([np.full(20, 50.0), climb], axis=1)
    best, iterations = reproduce.best_agent(particles)
    assert best == 100.0
    # 3-iteration means: ..., (80+90+100)/3 = 90, (90+100+100)/3 = 96.7 >= 95 first for the window ending at 12
    assert iterations == 12


def test_table_reports_episodes_to_95_percent_as_the_mean_over_seeds():
    run = {"best": 10.0, "iterations": 4, "episodes": 8.0, "final": np.array([10.0, 200.0])}
    groups = {("independent", None): [run, {**run, "episodes": 12.0}], ("svpg", 10.0): [run]}
    table = reproduce.render_table(groups, 10.0)
    assert "episodes to 95%" in table.splitlines()[0]
    independent = next(line for line in table.splitlines() if line.startswith("| independent"))
    assert "| 10 |" in independent and "| 1.0 ± 0.0 |" in independent  # 10 episodes; one agent above 100


def test_table_sets_the_papers_table_1_beside_each_method_when_given():
    run = {"best": 10.0, "iterations": 4, "episodes": 8.0, "final": np.array([10.0])}
    groups = {("joint", None): [run], ("independent", None): [run], ("svpg", 10.0): [run]}
    paper = reproduce.PAPER_TABLE1[("a2c", "cartpole_swingup")]
    lines = reproduce.render_table(groups, 10.0, paper).splitlines()
    assert lines[0].endswith("| paper's Table 1: best / episodes to 95% |")
    assert lines[2].startswith("| joint |") and lines[2].endswith("| 308.71 / 189 |")
    assert lines[4].startswith("| svpg (alpha 10) |") and lines[4].endswith("| 436.84 / 171 |")


def test_the_claims_cite_the_papers_row_for_the_sweeps_estimator_and_task():
    swingup = ConfigDict({"agent": {"estimator": "a2c"}, "env": {"name": "cartpole_swingup"}})
    assert reproduce.paper_best(swingup).endswith("436.84 (SVPG) vs 419.62 (independent) vs 308.71 (joint)")
    cartpole = ConfigDict({"agent": {"estimator": "reinforce"}, "env": {"name": "cartpole"}})
    assert reproduce.paper_best(cartpole) == reproduce.PAPER_BEST


def _runs(best: float, curve: np.ndarray, seeds: int = 2) -> list[dict]:
    """Runs whose best agent scores `best` (+-1 over seeds) with the best-agent return `curve` [iterations]."""
    return [
        {"best": best + (-1) ** seed, "final": np.array([best]), "curves": {"best": curve}} for seed in range(seeds)
    ]


def test_the_verdict_is_gated_on_the_best_agents_plateau_like_the_claims():
    flat = np.concatenate([np.linspace(0.0, 100.0, 10), np.full(30, 100.0)])
    rising = np.linspace(0.0, 100.0, 40)

    def verdict(svpg_best: float, curve: np.ndarray) -> str:
        groups = {("svpg", 10.0): _runs(svpg_best, curve), ("independent", None): _runs(100.0, flat)}
        return reproduce.verdict(groups, 10.0)

    assert verdict(150.0, flat).startswith("**Verdict at this scale: SVPG beats independent agents**")
    assert "plateau" not in verdict(150.0, flat)
    # a lead before the curves level off is no verdict; a deficit stands, with the reason
    assert verdict(150.0, rising).startswith("**No verdict at this scale: the runs had not reached a plateau**")
    behind = verdict(50.0, rising)
    assert behind.startswith("**Verdict at this scale: SVPG is worse than independent agents**")
    assert "the runs had not reached a plateau (svpg best-agent return" in behind
