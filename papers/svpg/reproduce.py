"""Runs SVPG against its baselines (and the temperature ablation) and writes the paper's Table 1 shape at this
machine's scale, the learning curves and the diversity view into papers/svpg/README.md.

  python -m papers.svpg.reproduce [--sweep configs/sweeps/svpg_cartpole.py] [--workdir DIR] [--readme FILE]

Per run the "best agent" is the particle with the highest mean return over the last quarter of the iterations
(the paper reports the agent with the best average return); its return is that mean, and "iterations to 95%" is
the first iteration where its return, averaged over a 3-iteration window, reaches 95% of it; "episodes to 95%" (the
paper's Table 1 unit) counts the episodes an agent finished up to that iteration (the joint agent's 16x the
environments finish 16x the episodes per iteration). Each run's final
metrics are kept in its workdir (final.json), so an interrupted sweep resumes where it stopped.
"""

import json
import os
import statistics

import numpy as np
from ml_collections import ConfigDict

from common import app, report, results, sweep
from common.train.metrics import read_metrics
from papers.svpg import train

SWEEP_FILE = "configs/sweeps/svpg_cartpole.py"
# Table 1 of the paper: (estimator, task) -> method -> (best return, episodes to 95% of it) (rllab's tasks; the
# swing-up's returns are on a scale like dm_control's 500-step one, the double pendulum's are negative costs).
PAPER_TABLE1 = {
    ("a2c", "cartpole_swingup"): {"joint": (308.71, 189), "independent": (419.62, 474), "svpg": (436.84, 171)},
    ("a2c", "inverted_double_pendulum"): {
        "joint": (-938.73, 46),
        "independent": (-256.64, 638),
        "svpg": (-244.85, 199),
    },
    ("reinforce", "cartpole_swingup"): {"joint": (232.96, 253), "independent": (391.46, 594), "svpg": (426.69, 238)},
    ("reinforce", "inverted_double_pendulum"): {
        "joint": (-892.31, 446),
        "independent": (-797.45, 443),
        "svpg": (-319.66, 327),
    },
}
# The best-agent claim's paper numbers where a sweep's estimator and task have no Table 1 row: REINFORCE on both.
_SWINGUP = PAPER_TABLE1[("reinforce", "cartpole_swingup")]
_PENDULUM = PAPER_TABLE1[("reinforce", "inverted_double_pendulum")]
PAPER_BEST = (
    f"Cartpole Swing-Up {_SWINGUP['svpg'][0]:.2f} (SVPG) vs {_SWINGUP['independent'][0]:.2f} (independent); "
    f"Double Pendulum {_PENDULUM['svpg'][0]:.2f} vs {_PENDULUM['independent'][0]:.2f}"
)
# The diversity figure (agents above a return of 100, of 16).
PAPER_DIVERSITY = "10 of 16 SVPG agents above a return of 100 vs 2 of 16 independent ones (swing-up)"
DIVERSE_RETURN = 100
BLOCK = "svpg_{sweep}"
METHOD, ALPHA, SEED = "svpg.method", "svpg.alpha", "seed"


def train_once(config: ConfigDict, workdir: str) -> dict:
    """train.train_and_evaluate, its final metrics kept in `<workdir>/final.json`."""
    path = os.path.join(workdir, "final.json")
    if not os.path.exists(path):
        final = train.train_and_evaluate(config, workdir)  # a signal raises TrainingStopped: rerun to resume
        with open(path, "w") as f:
            json.dump(final, f)
    with open(path) as f:
        return json.load(f)


def run_curves(workdir: str) -> dict[str, np.ndarray]:
    """metrics.jsonl -> best [I], mean [I], samples [I] and episodes [I] (cumulative, per agent), particles [I, P]."""
    rows = sorted(read_metrics(workdir), key=lambda row: row["step"])
    names = sorted(key for key in rows[0] if key.startswith("particle/"))
    return {
        "best": np.array([row["return_best"] for row in rows]),
        "mean": np.array([row["return_mean"] for row in rows]),
        "samples": np.array([row["samples_per_particle"] for row in rows]),
        "episodes": np.cumsum([row["episodes_per_particle"] for row in rows]),
        "particles": np.array([[row[name] for name in names] for row in rows]),
    }


def best_agent(particles: np.ndarray) -> tuple[float, int]:
    """particles [I, P] -> (the best agent's mean return over the last quarter, iterations to 95% of it)."""
    tail = max(len(particles) // 4, 1)
    scores = particles[-tail:].mean(0)
    agent = int(np.argmax(scores))
    best = float(scores[agent])
    curve = np.convolve(particles[:, agent], np.ones(3) / 3, mode="valid")
    reached = np.nonzero(curve >= 0.95 * best)[0] if best > 0 else np.nonzero(curve >= best / 0.95)[0]
    return best, int(reached[0]) + 3 if len(reached) else len(particles)


def summarise(reproduction: sweep.Reproduction) -> dict:
    """(method, alpha) -> list over seeds of {best, iterations, final particles sorted, curves}."""
    finished = reproduction.finished
    groups: dict = {}
    for point, _ in finished.results:
        curves = run_curves(os.path.join(reproduction.workdir, sweep.point_name(point)))
        best, iterations = best_agent(curves["particles"])
        alpha = point.get(ALPHA, finished.base.svpg.alpha)
        key = (point[METHOD], alpha if point[METHOD] == "svpg" else None)
        final_returns = np.sort(curves["particles"][-1])[::-1]
        episodes = float(curves["episodes"][iterations - 1])
        groups.setdefault(key, []).append(
            {
                "best": best,
                "iterations": iterations,
                "episodes": episodes,
                "final": final_returns,
                "curves": curves,
                "seed": point[SEED],
            }
        )
    return groups


def _mean_sd(values) -> str:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def render_table(groups: dict, alpha: float, paper: dict | None = None) -> str:
    """Table 1's shape per method; `paper` (method -> the paper's (best, episodes)) adds its column."""
    rows = []
    for method in ("joint", "independent", "svpg"):
        runs = groups.get((method, alpha if method == "svpg" else None), [])
        if not runs:
            continue
        rows.append(
            [
                method if method != "svpg" else f"svpg (alpha {alpha:g})",
                len(runs),
                _mean_sd(run["best"] for run in runs),
                _mean_sd(run["iterations"] for run in runs),
                f"{statistics.mean(run['episodes'] for run in runs):,.0f}",
                _mean_sd(float(np.mean(run["final"])) for run in runs),
                _mean_sd(agents_above(run) for run in runs),
                *([f"{paper[method][0]:.2f} / {paper[method][1]}"] if paper else []),
            ]
        )
    header = [
        "method",
        "seeds",
        "best agent's return",
        "iterations to 95%",
        "episodes to 95%",
        "mean agent, last iteration",
        "agents > 100, last iteration",
        *(["paper's Table 1: best / episodes to 95%"] if paper else []),
    ]
    return report.markdown_table(header, rows)


def render_ablation(groups: dict) -> str:
    rows = []
    for (method, alpha), runs in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
        if method != "svpg":
            continue
        seed0 = [run for run in runs if run["seed"] == 0]
        if seed0:
            run = seed0[0]
            rows.append([f"{alpha:g}", f"{run['best']:.1f}", run["iterations"], f"{np.mean(run['final']):.1f}"])
    return report.markdown_table(
        ["alpha", "best agent's return", "iterations to 95%", "mean agent, last iteration"], rows
    )


def agents_above(run: dict) -> float:
    """How many agents of a run end (last iteration) above DIVERSE_RETURN."""
    return float(np.sum(run["final"] > DIVERSE_RETURN))


def compare(groups: dict, alpha: float, measure) -> dict | None:
    """SVPG (at `alpha`) vs independent agents on `measure(run)`: both means, the gap, the larger seed sd and
    results.gap_against_spread's word; None without runs of both."""
    svpg, independent = groups.get(("svpg", alpha), []), groups.get(("independent", None), [])
    if not svpg or not independent:
        return None
    return results.compare_groups(
        [measure(run) for run in svpg], [measure(run) for run in independent], ("svpg", "independent")
    )


def best_agent_plateau(groups: dict, alpha: float) -> tuple[bool, str]:
    """Whether the best agent's return curves (mean over seeds) of SVPG (at `alpha`) and of the independent agents
    levelled off, and a phrase on how far each moved at its end: what the verdict and the claims rest on."""
    curves = []
    for method, key in (("svpg", ("svpg", alpha)), ("independent", ("independent", None))):
        runs = groups.get(key, [])
        if runs:
            best = np.mean([run["curves"]["best"] for run in runs], axis=0)
            label = f"{method} best-agent return (mean of {len(runs)} seeds)"
            curves.append(results.curve_plateau(np.arange(1, len(best) + 1), best, label))
    return results.all_plateau(curves)


def verdict(groups: dict, alpha: float) -> str:
    """The comparison of the best agents, gated on their plateau as the claims are (results.gate_on_plateau: before
    a plateau a lead is no verdict, a tie or a deficit stands with the reason)."""
    best = compare(groups, alpha, lambda run: run["best"])
    if best is None:
        return "Not enough runs for a verdict."
    mean_agent = compare(groups, alpha, lambda run: float(np.mean(run["final"])))
    plateau, detail = best_agent_plateau(groups, alpha)
    numbers = (
        f"on its best agent ({best['svpg']:.1f} vs {best['independent']:.1f}, difference {best['gap']:+.1f} against "
        f"a seed spread of {best['spread']:.1f}); the mean agent ends at {mean_agent['svpg']:.1f} vs "
        f"{mean_agent['independent']:.1f}"
    )
    gated, _ = results.gate_on_plateau(*results.lead_verdict(best["word"], "SVPG"), plateau, detail)
    if gated == "not tested":
        return (
            f"**No verdict at this scale: the runs had not reached a plateau** ({detail}). At the last iteration SVPG "
            f"leads independent agents {numbers}."
        )
    word = {"ahead": "beats", "behind": "is worse than", "level": "does not clearly beat"}[best["word"]]
    unfinished = "" if plateau else f"; the runs had not reached a plateau ({detail})"
    return f"**Verdict at this scale: SVPG {word} independent agents** {numbers}{unfinished}."


def paper_best(base: ConfigDict) -> str:
    """The paper's best-agent numbers to set beside a sweep: its Table 1 row for the sweep's estimator and task
    where it has one, else the REINFORCE rows of both tasks (PAPER_BEST)."""
    table = PAPER_TABLE1.get((base.agent.estimator, base.env.name))
    if table is None:
        return PAPER_BEST
    return (
        f"Table 1, {base.agent.estimator.upper()} on {base.env.name} (rllab's task): {table['svpg'][0]:.2f} (SVPG) vs "
        f"{table['independent'][0]:.2f} (independent) vs {table['joint'][0]:.2f} (joint)"
    )


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """The best-agent and the diversity claims, judged on the same comparisons and the same plateau
    (best_agent_plateau) as the verdict."""
    groups = summarise(reproduction)
    alpha = reproduction.finished.base.svpg.alpha
    stem = reproduction.stem
    plateau = best_agent_plateau(groups, alpha)
    outcomes = []
    for claim, paper, measure, unit in (
        (
            "SVPG's best agent beats the best of independently trained agents",
            paper_best(reproduction.finished.base),
            lambda run: run["best"],
            "best agent's return",
        ),
        (
            "SVPG keeps more agents good (diversity)",
            PAPER_DIVERSITY,
            agents_above,
            f"agents above {DIVERSE_RETURN} at the last iteration",
        ),
    ):
        comparison = compare(groups, alpha, measure)
        if comparison is None:
            outcomes.append(results.Claim(claim, paper, "no runs of both methods", "not tested", "sweep lacks runs"))
            continue
        measured = (
            f"{unit}: {comparison['svpg']:.1f} (SVPG, alpha {alpha:g}) vs {comparison['independent']:.1f} "
            f"(independent), difference {comparison['gap']:+.1f}, seed spread {comparison['spread']:.1f}"
        )
        verdict_word, why = results.gate_on_plateau(*results.lead_verdict(comparison["word"], "SVPG"), *plateau)
        outcomes.append(results.Claim(claim, paper, measured, verdict_word, why, f"{stem}_curves.png", plateau[0]))
    return outcomes


def render_plots(groups: dict, alpha: float, paths: tuple[str, str]) -> None:
    """Learning curves (best and mean agent per iteration, mean over seeds) and the sorted final returns
    of all agents (seed 0), at `paths`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("joint", None), ("independent", None), ("svpg", alpha)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    for (method, a), color in zip(keys, ("tab:gray", "tab:blue", "tab:red"), strict=True):
        runs = groups.get((method, a), [])
        if not runs:
            continue
        for ax, curve in zip(axes, ("best", "mean"), strict=True):
            values = np.mean([run["curves"][curve] for run in runs], axis=0)
            ax.plot(np.arange(1, len(values) + 1), values, color=color, label=method)
    for ax, title in zip(axes, ("best agent", "mean agent"), strict=True):
        ax.set_xlabel("iteration (the same samples in total for every method)")
        ax.set_ylabel("return")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
    for (method, a), color in zip(keys[1:], ("tab:blue", "tab:red"), strict=True):
        runs = [run for run in groups.get((method, a), []) if run["seed"] == 0]
        if runs:
            ax.plot(np.arange(1, len(runs[0]["final"]) + 1), runs[0]["final"], "o-", color=color, label=method)
    ax.set_xlabel("agent (sorted)")
    ax.set_ylabel("return, last iteration")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[1])
    plt.close(fig)


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    groups = summarise(reproduction)
    alpha = finished.base.svpg.alpha
    stem = reproduction.stem
    plots = (f"{stem}_curves.png", f"{stem}_diversity.png")
    render_plots(groups, alpha, tuple(reproduction.plot_path(plot) for plot in plots))
    base = finished.base
    samples = base.rollout.envs_per_particle * base.rollout.steps
    summed = sweep.trial_minutes(reproduction.workdir, finished.results)
    alphas = {a for method, a in groups if method == "svpg"}
    return "\n\n".join(
        [
            render_table(groups, alpha, PAPER_TABLE1.get((base.agent.estimator, base.env.name))),
            verdict(groups, alpha),
            *(["Temperature (seed 0):\n\n" + render_ablation(groups)] if len(alphas) > 1 else []),
            " ".join(f"![{plot}]({plot})" for plot in plots),
            f"Measured by {reproduction.command} on {report.machine_description()} (shared with other jobs): "
            f"{len(finished.results)} runs of {base.run.iterations} iterations, {base.svpg.num_particles} agents x "
            f"{samples} samples per iteration on {base.env.name} (episodes capped at {base.env.max_episode_steps} "
            f"steps), {base.agent.estimator}"
            + (f"; the runs took {summed:.0f} min summed over runs" if summed else "")
            + f"; this invocation took {finished.minutes:.0f} min (runs already finished in the workdir are only "
            "re-read).",
        ]
    )


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train_once, render, claims))
