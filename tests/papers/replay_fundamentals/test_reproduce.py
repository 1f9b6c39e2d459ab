"""The replay grid's summary: per-game % improvement over the baseline cell, median over games."""

import pytest

from papers.replay_fundamentals import reproduce

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed

SPEC = {
    "GAME_KEY": "env.name",
    "AGENT_KEY": "agent.n_step",
    "BASELINE": {reproduce.CAPACITY: 100, reproduce.AGE: 25},
}


def result(game, capacity, age, seed, final_return, n_step=1):
    point = {"agent.n_step": n_step, "env.name": game, reproduce.CAPACITY: capacity, reproduce.AGE: age, "seed": seed}
    return point, {"final_return": final_return}


def test_improvement_is_per_game_over_the_baseline_then_median_over_games():
    results = [
        result("a", 100, 25, 0, 10.0),
        result("a", 100, 25, 1, 30.0),  # baseline mean 20
        result("a", 1000, 25, 0, 30.0),  # +50%
        result("b", 100, 25, 0, -4.0),  # negative baseline: % of its magnitude
        result("b", 1000, 25, 0, -2.0),  # +50%
        result("c", 100, 25, 0, 5.0),
        result("c", 1000, 25, 0, 4.0),  # -20%
        result("a", 100, 25, 0, 1.0, n_step=3),
        result("a", 1000, 25, 0, 3.0, n_step=3),  # +200%
    ]
    summary = reproduce.improvements(results, SPEC, base_game="unused")
    assert summary[1][(100, 25)] == 0.0
    assert summary[1][(1000, 25)] == pytest.approx(50.0)  # median of +50, +50, -20
    assert summary[3][(1000, 25)] == pytest.approx(200.0)
    table = reproduce.render_table(summary, "agent.n_step")
    assert "| agent.n_step=1 | 1,000 | 25 | 0.025 | +50.0 |" in table


def test_the_score_table_lists_every_seed_in_numeric_order_and_the_claims_cells_are_the_same_ratio_ones():
    results = [
        result("a", 100, 25, 0, 10.0),
        result("a", 100, 25, 1, 30.0),
        result("a", 400, 100, 0, 12.5),
        result("a", 400, 25, 0, 8.0),  # another ratio: in the table, not among the claim's cells
        result("a", 1000, 250, 0, 40.0),
    ]
    table = reproduce.render_scores(results, SPEC, base_game="unused")
    rows = [line for line in table.splitlines() if line.startswith("| agent.n_step=1")]
    assert rows[0] == "| agent.n_step=1 | a | 100 | 25 | 10.00 / 30.00 | 20.00 |"
    assert [row.split(" | ")[2] for row in rows] == ["100", "400", "400", "1,000"]  # numbers, not strings
    summary = reproduce.improvements(results, SPEC, base_game="unused")
    assert reproduce.claim_cells(summary, SPEC["BASELINE"]) == {(100, 25), (1000, 250)}


def test_seed_spread_is_the_largest_seed_sd_of_the_compared_cells_as_a_share_of_the_baseline():
    results = [
        result("a", 100, 25, 0, 18.0),
        result("a", 100, 25, 1, 22.0),  # baseline mean 20, sd 2.83 -> 14.1%
        result("a", 1000, 250, 0, 21.0),
        result("a", 1000, 250, 1, 21.0),
        result("a", 400, 25, 0, 0.0),  # not a compared cell: ignored
        result("a", 400, 25, 1, 100.0),
    ]
    spread = reproduce.seed_spread(results, SPEC, "unused", {(100, 25), (1000, 250)})
    assert spread == pytest.approx(100 * 2.828427 / 20, rel=1e-5)
    assert reproduce.seed_spread(results[:1] + results[2:3], SPEC, "unused", {(100, 25), (1000, 250)}) is None


def test_a_lead_is_reproduced_only_beyond_the_seed_spread_and_one_seed_is_at_most_partly():
    assert reproduce.capacity_verdict(10.0, 2.0, spread=5.0)[0] == "reproduced"
    assert reproduce.capacity_verdict(10.0, 6.0, spread=5.0)[0] == "partly"
    assert reproduce.capacity_verdict(10.0, 2.0, spread=None) == (
        "partly",
        "the n-step agent gains and gains more than the 1-step one, over one seed: no seed spread",
    )
    assert reproduce.capacity_verdict(-1.0, -5.0, spread=None)[0] == "not reproduced at this scale"
    assert reproduce.capacity_verdict(3.0, 4.0, spread=1.0)[0] == "not reproduced at this scale"
