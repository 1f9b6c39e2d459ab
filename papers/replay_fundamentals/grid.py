"""Runs a replay grid (capacity x age of the oldest policy) and writes the paper's summary: per game, the percentage
improvement of each cell over the baseline cell; the median over games, as a table, a heat map and a bar plot.

  python -m papers.replay_fundamentals.grid --sweep configs/sweeps/replay_cartpole.py

A sweep file holds SWEEP (common/sweep.py) plus BASELINE (the baseline cell), MIN_REPLAY_RATIO (cells below it are
skipped), GAME_KEY and AGENT_KEY (the config keys that name the game and the agent variant). Each run's final
metrics are kept in its workdir (final.json), so an interrupted grid resumes where it stopped.
"""

import argparse
import json
import os
import runpy
import statistics
import time

from common import app, report, sweep
from papers.replay_fundamentals import train

CAPACITY, AGE = "replay.capacity", "replay.oldest_policy_age"


def run_grid(spec: dict, root: str) -> list[tuple[dict, dict]]:
    """Trains every cell at or above the sweep's MIN_REPLAY_RATIO (skipping finished runs)."""
    definition = spec["SWEEP"]
    base = sweep.load_config(definition.config)
    points = [p for p in definition.points() if p[AGE] / p[CAPACITY] >= spec.get("MIN_REPLAY_RATIO", 0.0)]
    results = []
    for index, point in enumerate(points, 1):
        workdir = os.path.join(root, sweep.point_name(point))
        path = os.path.join(workdir, "final.json")
        if not os.path.exists(path):
            print(f"[{index}/{len(points)}] {sweep.point_name(point)}", flush=True)
            config = sweep.apply_overrides(base, point)
            final = train.train_and_evaluate(config, workdir)
            if final["updates"] < config.run.total_updates:  # stopped by a signal: rerun to resume it
                raise SystemExit(f"stopped at {final['updates']:.0f} updates in {workdir}")
            with open(path, "w") as f:
                json.dump(final, f)
        with open(path) as f:
            results.append((point, json.load(f)))
    return results


def improvements(results, spec: dict, base_game: str) -> dict:
    """agent -> {(capacity, age): median over games of the % improvement over the baseline cell}.

    A game's score in a cell is the mean over seeds of the final return (the mean return of the episodes in the
    last run.final_fraction of training).
    """
    game_key, agent_key, baseline = spec["GAME_KEY"], spec["AGENT_KEY"], spec["BASELINE"]
    scores: dict = {}
    for point, final in results:
        key = (point.get(agent_key), point.get(game_key, base_game), point[CAPACITY], point[AGE])
        scores.setdefault(key, []).append(final["final_return"])
    table: dict = {}
    for (agent, game, capacity, age), values in scores.items():
        base_values = scores[(agent, game, baseline[CAPACITY], baseline[AGE])]
        base_score = statistics.mean(base_values)
        change = 100 * (statistics.mean(values) - base_score) / abs(base_score)
        table.setdefault(agent, {}).setdefault((capacity, age), []).append(change)
    return {agent: {cell: statistics.median(v) for cell, v in cells.items()} for agent, cells in table.items()}


def render_table(summary: dict, agent_key: str) -> str:
    rows = []
    for agent, cells in sorted(summary.items()):
        for (capacity, age), value in sorted(cells.items()):
            rows.append([f"{agent_key}={agent}", f"{capacity:,}", f"{age:,}", f"{age / capacity:.4g}", f"{value:+.1f}"])
    header = ["agent", "capacity", "oldest policy (updates)", "replay ratio", "median % vs baseline"]
    return report.markdown_table(header, rows)


def render_plots(summary: dict, agent_key: str, stem: str) -> list[str]:
    """A heat map per agent (capacity x age) and one bar plot of all cells; returns the file paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
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
    paths.append(f"papers/replay_fundamentals/{stem}_heatmap.png")
    fig.savefig(paths[-1])
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
    paths.append(f"papers/replay_fundamentals/{stem}_bars.png")
    fig.savefig(paths[-1])
    plt.close(fig)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default="configs/sweeps/replay_cartpole.py")
    parser.add_argument("--workdir", default=None, help="default: workdirs/replay_fundamentals/<sweep name>")
    parser.add_argument("--readme", default="papers/replay_fundamentals/README.md")
    args = parser.parse_args(argv)
    app.prepare_environment()
    stem = os.path.splitext(os.path.basename(args.sweep))[0]
    root = args.workdir or os.path.join("workdirs", "replay_fundamentals", stem)
    spec = runpy.run_path(args.sweep)
    started = time.time()
    results = run_grid(spec, root)
    minutes = (time.time() - started) / 60
    base = sweep.load_config(spec["SWEEP"].config)
    summary = improvements(results, spec, base.env.name)
    plots = render_plots(summary, spec["AGENT_KEY"], stem)
    command = f"`python -m papers.replay_fundamentals.grid --sweep {args.sweep}`"
    block = "\n\n".join(
        [
            render_table(summary, spec["AGENT_KEY"]),
            " ".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots),
            f"Measured by {command} on {report.machine_description()}: {len(results)} runs of "
            f"{base.run.total_updates:,} gradient updates on {base.env.name}; this invocation took {minutes:.0f} min "
            "(runs already finished in the workdir are only re-read).",
        ]
    )
    report.replace_block(args.readme, f"replay_grid_{stem}", block)
    print(block)


if __name__ == "__main__":
    main()
