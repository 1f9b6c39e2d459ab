"""Runs a replay grid (capacity x age of the oldest policy) and writes the paper's summary: per game, the percentage
improvement of each cell over the baseline cell; the median over games, as a table, a heat map and a bar plot.

  python -m papers.replay_fundamentals.reproduce [--sweep configs/sweeps/replay_cartpole.py] [--workdir DIR] \
      [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

A sweep file holds SWEEP (common/sweep; its `where` skips the lowest replay ratios) plus BASELINE (the
baseline cell), GAME_KEY and AGENT_KEY (the config keys that name the game and the agent variant). The block
`replay_grid_<sweep file's stem>` of the README gets the table, each cell's final returns per seed, and
<stem>_heatmap.png, <stem>_bars.png and <stem>_curves.png (episode return along training in the cells the capacity
claim compares) written beside it. Each run's final metrics are kept in its workdir (final.json), so an
interrupted grid resumes where it stopped.
"""

import dataclasses
import json
import os
import statistics

from ml_collections import ConfigDict

from common import app, report, results, sweep
from papers.replay_fundamentals import train

SWEEP_FILE = "configs/sweeps/replay_cartpole.py"
BLOCK = "replay_grid_{sweep}"
CAPACITY, AGE = "replay.capacity", "replay.oldest_policy_age"
PAPER_CAPACITY = (
    "1M -> 10M capacity at a fixed replay ratio: Rainbow (n-step) +28.7%, DQN (1-step) +0.1% (median over Atari "
    "games); n-step returns are what makes DQN benefit"
)


def train_once(config: ConfigDict, workdir: str) -> dict:
    """train.train_and_evaluate, its final metrics kept in `<workdir>/final.json` so a finished run is only
    re-read (an RL run has no cheap re-evaluation)."""
    path = os.path.join(workdir, "final.json")
    if not os.path.exists(path):
        final = train.train_and_evaluate(config, workdir)  # a signal raises TrainingStopped: rerun to resume
        with open(path, "w") as f:
            json.dump(final, f)
    with open(path) as f:
        return json.load(f)


def final_returns(results, spec: dict, base_game: str) -> dict:
    """(agent, game, capacity, age) -> the final returns of its runs (one per seed), in sweep order."""
    scores: dict = {}
    for point, final in results:
        key = (point.get(spec["AGENT_KEY"]), point.get(spec["GAME_KEY"], base_game), point[CAPACITY], point[AGE])
        scores.setdefault(key, []).append(final["final_return"])
    return scores


def improvements(results, spec: dict, base_game: str) -> dict:
    """agent -> {(capacity, age): median over games of the % improvement over the baseline cell}.

    A game's score in a cell is the mean over seeds of the final return (the mean return of the episodes in the
    last run.final_fraction of training).
    """
    baseline = spec["BASELINE"]
    scores = final_returns(results, spec, base_game)
    table: dict = {}
    for (agent, game, capacity, age), values in scores.items():
        base_values = scores[(agent, game, baseline[CAPACITY], baseline[AGE])]
        base_score = statistics.mean(base_values)
        change = 100 * (statistics.mean(values) - base_score) / abs(base_score)
        table.setdefault(agent, {}).setdefault((capacity, age), []).append(change)
    return {agent: {cell: statistics.median(v) for cell, v in cells.items()} for agent, cells in table.items()}


def seed_spread(results, spec: dict, base_game: str, cells: set) -> float | None:
    """The seed noise of the % table in `cells`: per game, the largest standard deviation over seeds of a compared
    cell's final return (any agent), as % of that game's baseline mean; the median over games. None with one seed."""
    baseline = spec["BASELINE"]
    scores = final_returns(results, spec, base_game)
    per_game: dict = {}
    for (agent, game, capacity, age), values in scores.items():
        if (capacity, age) in cells and len(values) > 1:
            base_mean = abs(statistics.mean(scores[(agent, game, baseline[CAPACITY], baseline[AGE])]))
            per_game.setdefault(game, []).append(100 * statistics.stdev(values) / base_mean)
    return statistics.median(max(values) for values in per_game.values()) if per_game else None


def capacity_gains(summary: dict, baseline: dict) -> dict:
    """agent -> (largest capacity, its median % vs baseline) among the cells at the baseline's replay ratio."""
    gains = {}
    for agent, cells in summary.items():
        same_ratio = [
            (capacity, value)
            for (capacity, age), value in cells.items()
            if age * baseline[CAPACITY] == baseline[AGE] * capacity
        ]
        if same_ratio:
            gains[agent] = max(same_ratio)
    return gains


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """More capacity at a fixed replay ratio helps the agent with the most steps of return (the sweep's largest
    AGENT_KEY value) and helps it more than the 1-step one; from the table's medians, gated on the mean
    episode-return curve of every run reaching a plateau; "partly" where the n-step agent's lead is within the seed
    spread (seed_spread)."""
    finished = reproduction.finished
    spec = vars(finished.module)
    summary = improvements(finished.results, spec, finished.base.env.name)
    gains = capacity_gains(summary, spec["BASELINE"])
    claim = "More replay capacity at a fixed replay ratio helps with n-step returns, not without"
    if len(gains) < 2:
        return [results.Claim(claim, PAPER_CAPACITY, "fewer than two agents", "not tested", "the sweep lacks them")]
    one_step, n_step = min(gains), max(gains)
    stem = reproduction.stem
    measured = "; ".join(
        f"{spec['AGENT_KEY']}={agent}: capacity {capacity:,} {value:+.1f}% vs the baseline cell"
        for agent, (capacity, value) in sorted(gains.items())
    )
    spread = seed_spread(finished.results, spec, finished.base.env.name, claim_cells(summary, spec["BASELINE"]))
    verdict, why = capacity_verdict(gains[n_step][1], gains[one_step][1], spread)
    plateau = results.runs_plateau(results.workdirs_where(reproduction, lambda *_: True), "episode_return")
    verdict, why = results.gate_on_plateau(verdict, why, *plateau)
    return [results.Claim(claim, PAPER_CAPACITY, measured, verdict, why, f"{stem}_heatmap.png", plateau[0])]


def capacity_verdict(n_step_gain: float, one_step_gain: float, spread: float | None) -> tuple[str, str]:
    """(verdict, why) from the two agents' median % gains at the largest capacity and the seed spread (seed_spread;
    None with one seed per cell, when a lead cannot be told from seed noise, so it is at most "partly")."""
    if not (n_step_gain > 0 and n_step_gain > one_step_gain):
        return "not reproduced at this scale", "the n-step agent does not gain more than the 1-step one"
    if spread is None:
        return "partly", "the n-step agent gains and gains more than the 1-step one, over one seed: no seed spread"
    if n_step_gain - one_step_gain <= spread:
        return "partly", (
            "the n-step agent gains and gains more than the 1-step one, by less than the seed spread "
            f"({spread:.1f}% of the baseline score: the median over games of the compared cells' largest seed sd)"
        )
    return "reproduced", "the n-step agent gains and gains more than the 1-step one, beyond the seed spread"


def render_table(summary: dict, agent_key: str) -> str:
    rows = []
    for agent, cells in sorted(summary.items()):
        for (capacity, age), value in sorted(cells.items()):
            rows.append([f"{agent_key}={agent}", f"{capacity:,}", f"{age:,}", f"{age / capacity:.4g}", f"{value:+.1f}"])
    header = ["agent", "capacity", "oldest policy (updates)", "replay ratio", "median % vs baseline"]
    return report.markdown_table(header, rows)


def render_scores(results, spec: dict, base_game: str) -> str:
    """One row per agent, game and cell: each seed's final return and their mean (what the % table is made of)."""
    scores = final_returns(results, spec, base_game)
    rows = [
        [f"{spec['AGENT_KEY']}={agent}", game, f"{capacity:,}", f"{age:,}"]
        + [" / ".join(f"{v:.2f}" for v in values), f"{statistics.mean(values):.2f}"]
        for (agent, game, capacity, age), values in sorted(scores.items())
    ]
    header = ["agent", "game", "capacity", "oldest policy (updates)", "final return per seed", "mean"]
    return report.markdown_table(header, rows)


def claim_cells(summary: dict, baseline: dict) -> set[tuple[int, int]]:
    """The cells the capacity claim compares: the baseline and each agent's largest capacity at its ratio."""
    cells = {(baseline[CAPACITY], baseline[AGE])}
    for capacity, _ in capacity_gains(summary, baseline).values():
        cells.add((capacity, baseline[AGE] * capacity // baseline[CAPACITY]))
    return cells


def render_plots(summary: dict, agent_key: str, paths: tuple[str, str]) -> None:
    """A heat map per agent (capacity x age) and one bar plot of all cells, at `paths` (heat map, bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    capacities = sorted({c for cells in summary.values() for c, _ in cells})
    ages = sorted({a for cells in summary.values() for _, a in cells})
    agents = sorted(summary)
    fig, axes = plt.subplots(1, len(agents), figsize=(4.2 * len(agents), 3.6), dpi=120, squeeze=False)
    for ax, agent in zip(axes[0], agents, strict=True):
        grid = np.full((len(ages), len(capacities)), np.nan)
        for (capacity, age), value in summary[agent].items():
            grid[ages.index(age), capacities.index(capacity)] = value
        limit = np.nanmax(np.abs(grid)) or 1.0
        ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower")
        for i, j in zip(*np.where(~np.isnan(grid)), strict=True):
            dark = abs(grid[i, j]) > 0.6 * limit
            ax.text(
                j, i, f"{grid[i, j]:+.0f}%", ha="center", va="center", fontsize=8, color="white" if dark else "black"
            )
        ax.set_xticks(range(len(capacities)), [f"{c:,}" for c in capacities])
        ax.set_yticks(range(len(ages)), [f"{a:,}" for a in ages])
        ax.set_xlabel("replay capacity")
        ax.set_ylabel("age of oldest policy (updates)")
        ax.set_title(f"{agent_key}={agent}")
    fig.tight_layout()
    fig.savefig(paths[0])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.4), dpi=120)
    cells = sorted({cell for cells in summary.values() for cell in cells})
    width = 0.8 / len(agents)
    for k, agent in enumerate(agents):
        values = [summary[agent].get(cell, np.nan) for cell in cells]
        ax.bar(np.arange(len(cells)) + k * width, values, width, label=f"{agent_key}={agent}")
    ax.set_xticks(np.arange(len(cells)) + width * (len(agents) - 1) / 2, [f"{c:,}\n{a:,}" for c, a in cells])
    ax.set_xlabel("capacity / age of oldest policy")
    ax.set_ylabel("median % improvement")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[1])
    plt.close(fig)


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    spec = vars(finished.module)
    summary = improvements(finished.results, spec, finished.base.env.name)
    stem = reproduction.stem
    plots = (f"{stem}_heatmap.png", f"{stem}_bars.png")
    render_plots(summary, spec["AGENT_KEY"], tuple(reproduction.plot_path(plot) for plot in plots))
    base = finished.base
    compared = claim_cells(summary, spec["BASELINE"])

    def label(point: dict) -> str:
        game = point.get(spec["GAME_KEY"], base.env.name)
        return f"{game}, {spec['AGENT_KEY']}={point.get(spec['AGENT_KEY'])}, {point[CAPACITY]:,} / {point[AGE]:,}"

    curves = f"{stem}_curves.png"
    results.plot_group_curves(
        _only_cells(reproduction, compared),
        label,
        reproduction.plot_path(curves),
        "episode return along training, the cells the capacity claim compares (game, agent, capacity / oldest "
        "policy), mean over seeds",
        metric="episode_return",
        xlabel="environment step",
    )
    updates = sorted({point.get("run.total_updates", base.run.total_updates) for point, _ in finished.results})
    games = sorted({point.get(spec["GAME_KEY"], base.env.name) for point, _ in finished.results})
    summed = sweep.trial_minutes(reproduction.workdir, finished.results)
    return "\n\n".join(
        [
            render_table(summary, spec["AGENT_KEY"]),
            " ".join(f"![{plot}]({plot})" for plot in plots),
            render_scores(finished.results, spec, base.env.name),
            f"![episode return along training]({curves})",
            f"Measured by {reproduction.command} on {report.machine_description()}: {len(finished.results)} runs of "
            f"{' / '.join(f'{u:,}' for u in updates)} gradient updates on {', '.join(games)}"
            + (f"; the runs took {summed:.0f} min summed over runs" if summed else "")
            + f"; this invocation took {finished.minutes:.0f} min (runs already finished in the workdir are only "
            "re-read).",
        ]
    )


def _only_cells(reproduction: sweep.Reproduction, cells: set) -> sweep.Reproduction:
    """The reproduction restricted to the runs in `cells` ((capacity, age) pairs)."""
    finished = reproduction.finished
    kept = [(point, final) for point, final in finished.results if (point[CAPACITY], point[AGE]) in cells]
    return dataclasses.replace(reproduction, finished=dataclasses.replace(finished, results=kept))


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train_once, render, claims))
