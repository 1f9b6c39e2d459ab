"""The equation search of backprop evolution: regularised (aging) evolution over backward-pass equations.

  python -m papers.backprop_evolution.search --config=papers/backprop_evolution/config.py:search \
      --workdir=workdirs/backprop_evolution/search [--readme=papers/backprop_evolution/README.md]

Each candidate passes `search_space.check_candidate` first (non-finite, constant and gradient-blind equations are
rejected with a reason), then trains as a child (papers/backprop_evolution/child.py) and scores its validation
accuracy. Results go to `<workdir>/results.jsonl` as each child finishes, keyed by the equation's readable name and
the child budget; evolution is deterministic given its seed and the rewards, so a killed search rerun with the
same command replays its cycles from the cache and continues where it stopped. Standard backprop (`g * dact`) is
scored by the same evaluator as the reference. At the end: the ranking (`<workdir>/ranking.md` and the README's
`search` block) and a plot of every child's reward in evaluation order.
"""

import json
import os
import time
from collections.abc import Callable, Sequence

from absl import flags
from ml_collections import ConfigDict

from common import app, report
from common.registry import lookup
from common.search import evolution
from common.search.cache import Evaluation, ResultsCache
from common.search.evaluator import Evaluator, ranking
from common.train import classification
from papers.backprop_evolution import child, search_space

ChildTrainer = Callable[[Sequence[search_space.Candidate], ConfigDict, object], list[child.ChildResult]]
SEARCH_PLOT = "search_progress.png"  # written beside the README given by --readme


def budget_key(config: ConfigDict) -> str:
    """What a child's accuracy depends on besides its equation; part of the cache key."""
    ds, m = config.dataset, config.model
    return (
        f"{m.name}{list(m.hidden)}-{m.activation}-{m.apply_to}|{ds.name}|{ds.train_split}->{ds.eval_split}"
        f"|{config.train.num_steps}x{ds.batch_size}|{config.optimizer.name}@{config.optimizer.learning_rate}"
        f"|seed{config.seed}"
    )


def make_evaluator(
    config: ConfigDict, workdir: str, trainer: ChildTrainer = child.train_children, load_dataset=None
) -> Evaluator:
    """`<workdir>/results.jsonl` under `budget_key`, the rule probe, children on the config's data (loaded once,
    by `load_dataset(config)`, default classification.load_dataset, when the first child trains)."""
    dataset = []

    def train(candidates):
        if not dataset:
            dataset.append((load_dataset or classification.load_dataset)(config))
        return trainer(candidates, config, dataset[0])

    cache = ResultsCache(os.path.join(workdir, "results.jsonl"), budget_key(config))
    return Evaluator(
        search_space.LANGUAGE,
        cache,
        train,
        check=search_space.check_candidate,
        group_size=int(config.search.group_size),
    )


def _random_population(vocabulary, size):
    return None  # regularized_evolution's default: uniformly random candidates


def _backprop_mutants(vocabulary, size):
    """Backprop and size - 1 one-decision mutations of it: a search that starts where training is known to work
    (uniformly random two-unit equations mostly ignore g and are rejected)."""
    backprop = search_space.backprop_candidate(vocabulary.num_units)
    return lambda rng: [backprop] + [vocabulary.mutate(backprop, rng) for _ in range(size - 1)]


INITIAL_POPULATIONS = {"random": _random_population, "backprop_mutants": _backprop_mutants}


def evolve(config: ConfigDict, evaluator: Evaluator) -> list[Evaluation]:
    """Every candidate regularised evolution proposes, in order, as Evaluations (rejected ones included)."""
    s = config.search
    vocabulary = search_space.vocabulary(s.binaries, s.unaries, s.num_units)
    initial = lookup(INITIAL_POPULATIONS, s.initial_population, "initial population")(
        vocabulary, int(s.population_size)
    )
    with evaluator.progress(int(s.num_candidates), f"regularised evolution, {s.num_candidates} candidates"):
        history = evolution.regularized_evolution(
            vocabulary,
            evaluator.rewards,
            population_size=int(s.population_size),
            sample_size=int(s.sample_size),
            num_candidates=int(s.num_candidates),
            seed=int(config.seed),
            initial=initial,
        )
    return [evaluator.cache.get(search_space.readable_name(individual.candidate)) for individual in history]


def markdown_cell(text: str) -> str:
    """`text` safe inside a Markdown table cell (a `|` would end the cell, even in a code span)."""
    return text.replace("|", "\\|")


def render_ranking(ranked: Sequence[Evaluation], backprop: Evaluation, rows: int | None = None) -> str:
    table = []
    for rank, e in enumerate(ranked[:rows], 1):
        marker = " (backprop)" if e.name == backprop.name else ""
        delta = 100 * (e.accuracy - backprop.accuracy)
        table.append(
            [rank, f"`{markdown_cell(e.name)}`{marker}", f"`{e.spec}`", f"{100 * e.accuracy:.2f}", f"{delta:+.2f}"]
        )
    return report.markdown_table(
        ["rank", "equation for delta", "spec (model.rule)", "validation acc. (%)", "vs backprop (points)"], table
    )


def render_progress(evaluations: Sequence[Evaluation], backprop: Evaluation, path: str, title: str) -> None:
    """Every child's validation accuracy in evaluation order (rejected: not drawn), the best so far, backprop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    trained = [(i, 100 * e.accuracy) for i, e in enumerate(evaluations) if e.accuracy is not None]
    ax.scatter([i for i, _ in trained], [a for _, a in trained], s=12, alpha=0.6, label="child")
    best, running = [], 0.0
    for _, accuracy in trained:
        running = max(running, accuracy)
        best.append(running)
    ax.plot([i for i, _ in trained], best, color="black", label="best so far")
    ax.axhline(100 * backprop.accuracy, color="tab:red", linestyle="--", label="backprop")
    ax.set_xlabel("candidate (evaluation order)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(max(0.0, 100 * backprop.accuracy - 30), None)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(
    config: ConfigDict,
    workdir: str,
    readme: str | None = None,
    command: str = "python -m papers.backprop_evolution.search",
    trainer: ChildTrainer = child.train_children,
    load_dataset=None,
) -> dict:
    """The whole search in `workdir`; with `readme`, writes its `search` block and plot there. Returns a summary."""
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    evaluator = make_evaluator(config, workdir, trainer, load_dataset)
    (backprop,) = evaluator.evaluate([search_space.from_spec(search_space.BACKPROP)])
    evaluations = evolve(config, evaluator)
    minutes = (time.time() - started) / 60
    distinct = {e.name: e for e in [*evaluations, backprop]}
    ranked = ranking(distinct.values())
    rejected = [e for e in distinct.values() if e.rejected]
    reasons: dict[str, int] = {}
    for e in rejected:
        kind = e.rejected.split(":")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    setting = (
        f"{config.model.name} {list(config.model.hidden)} children on {config.dataset.name} "
        f"({config.dataset.train_split} -> {config.dataset.eval_split}), {config.train.num_steps} steps of batch "
        f"{config.dataset.batch_size}"
    )
    table = render_ranking(ranked, backprop)
    with open(os.path.join(workdir, "ranking.md"), "w") as f:
        f.write(table + "\n")
    summary = {
        "candidates": len(evaluations),
        "distinct": len(distinct),
        "trained": len(ranked),
        "rejected": reasons,
        "trained_this_run": evaluator.children_trained,
        "search_minutes": round(minutes, 1),
        "best": ranked[0].name,
        "best_accuracy": ranked[0].accuracy,
        "backprop_accuracy": backprop.accuracy,
        "backprop_rank": [e.name for e in ranked].index(backprop.name) + 1,
    }
    if readme:
        folder = os.path.dirname(os.path.abspath(readme))
        render_progress(evaluations, backprop, os.path.join(folder, SEARCH_PLOT), setting)
        seconds = [e.seconds for e in distinct.values() if e.accuracy is not None and e.seconds]
        block = (
            f"{render_ranking(ranked, backprop, int(config.search.top_k))}\n\n![search progress]({SEARCH_PLOT})"
            f"\n\nSearched by `{command}` on {report.machine_description()}: {len(evaluations)} candidates proposed "
            f"by regularised evolution (population {config.search.population_size}, initially "
            f"{config.search.initial_population}, tournament {config.search.sample_size}, seed {config.seed}), "
            f"{len(distinct)} distinct with backprop, "
            f"{len(rejected)} rejected before training ({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}),"
            f" {len(ranked)} trained ({setting}); backprop ranks {summary['backprop_rank']} of {len(ranked)}. A child "
            f"took a median {sorted(seconds)[len(seconds) // 2]:.1f} s and all children {sum(seconds) / 60:.1f} min "
            f"together; this invocation took {minutes:.1f} min (cached children are not retrained)."
        )
        report.replace_block(readme, "search", block)
    return summary


def main(argv):
    run_flags = app.start(argv)
    command = (
        f"python -m papers.backprop_evolution.search --config={run_flags.config_spec} --workdir={run_flags.workdir}"
    )
    if app.FLAGS.readme:
        command += f" --readme={app.FLAGS.readme}"
    print(json.dumps(run(run_flags.config, run_flags.workdir, app.FLAGS.readme, command)), flush=True)


if __name__ == "__main__":
    flags.DEFINE_string("readme", None, "Write the ranking into this README's `search` block (plot beside it).")
    app.define_flags(__file__)
    app.run(main)
