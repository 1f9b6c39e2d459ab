"""The activation search of "Searching for activation functions": exhaustive or controller-driven, then re-training.

  python -m papers.swish.search --config=papers/swish/config.py:search_exhaustive --workdir=workdirs/swish/search
  python -m papers.swish.search --config=papers/swish/config.py:search_controller --workdir=...

Every candidate passes `search_space.check_candidate` first (constant, non-finite and non-differentiable ones are
rejected with a reason), then trains as a child (papers/swish/child.py) and scores its validation accuracy. Each
result goes to `<workdir>/results.jsonl` as soon as its group finishes, keyed by the candidate's readable name and
the child budget, so a killed search resumes without retraining what it has: the exhaustive search skips the cached
candidates, and the controller search replays its (deterministic) sampling and PPO updates from the cached rewards
until it reaches new candidates. At the end: the ranked table (`<workdir>/ranking.md`, and the `search` block of
--readme), a plot of the top functions' shapes, and the best function re-trained over seeds against ReLU and Swish
with the reproduce script's sweep machinery (`search_retrain` block).
"""

import json
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import ConfigDict

from common import app, report, sweep
from common.registry import lookup
from common.search import evaluator as search_evaluator
from common.search.cache import Evaluation, ResultsCache
from common.search.controller import PPOTrainer
from common.search.evaluator import ranking
from common.train import classification
from papers.swish import child, reproduce, search_space, train

ChildTrainer = Callable[[Sequence[search_space.Candidate], ConfigDict, object], list[child.ChildResult]]
SEARCH_PLOT = "search_functions.png"  # written beside the README given by --readme
RETRAIN_PLOT = "search_retrain.png"


def budget_key(config: ConfigDict) -> str:
    """What a child's accuracy depends on besides its activation; part of the cache key."""
    ds = config.dataset
    return (
        f"{config.model.name}|{ds.name}|{ds.train_split}->{ds.eval_split}|{config.train.num_steps}x{ds.batch_size}"
        f"|{config.optimizer.name}@{config.optimizer.learning_rate}|seed{config.seed}"
    )


class Evaluator(search_evaluator.Evaluator):
    """The search config's evaluator: `<workdir>/results.jsonl` under `budget_key`, Swish's rejection probe, and
    children trained by `trainer` on the config's dataset (loaded on first use)."""

    def __init__(self, config: ConfigDict, workdir: str, trainer: ChildTrainer = child.train_children, dataset=None):
        self.config = config
        self._dataset = dataset
        super().__init__(
            search_space.LANGUAGE,
            ResultsCache(os.path.join(workdir, "results.jsonl"), budget_key(config)),
            lambda candidates: trainer(candidates, config, self.dataset),
            check=search_space.check_candidate,
            group_size=int(config.search.group_size),
        )

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = classification.load_dataset(self.config)
        return self._dataset


def one_unit_candidates(binaries: Sequence[str], unaries: Sequence[str]) -> list[search_space.Candidate]:
    """Every b(u1(x), u2(x)) over the given functions, one per distinct readable name, in a fixed order."""
    return search_space.vocabulary(binaries, unaries, 1).one_unit_candidates()


def exhaustive_search(config: ConfigDict, evaluator: Evaluator) -> list[Evaluation]:
    if int(config.search.num_units) != 1:
        raise ValueError(f"exhaustive search enumerates one core unit; got num_units={config.search.num_units}")
    candidates = one_unit_candidates(config.search.binaries, config.search.unaries)
    with evaluator.progress(len(candidates), f"exhaustive search over {len(candidates)} one-unit candidates"):
        return evaluator.evaluate(candidates)


def controller_search(config: ConfigDict, evaluator: Evaluator) -> list[Evaluation]:
    """PPO rounds: sample a batch of candidates, score them, update the controller. Deterministic given the seed,
    so a resumed search replays the same rounds (from the cache) until it reaches unseen candidates."""
    s = config.search
    vocabulary = search_space.vocabulary(s.binaries, s.unaries, s.num_units)
    trainer = PPOTrainer(
        vocabulary,
        seed=int(config.seed),
        hidden=int(s.controller.hidden),
        learning_rate=float(s.controller.learning_rate),
        clip_epsilon=float(s.controller.clip_epsilon),
        entropy_weight=float(s.controller.entropy_weight),
        ppo_epochs=int(s.ppo_epochs),
        baseline_decay=float(s.baseline_decay),
    )
    evaluations = []
    total = int(s.iterations) * int(s.candidates_per_iteration)
    with evaluator.progress(total, f"controller search, {s.iterations} rounds") as bar:
        for iteration in range(int(s.iterations)):
            actions, log_probs = trainer.sample(int(s.candidates_per_iteration))
            batch = evaluator.evaluate([vocabulary.decode(row) for row in actions])
            rewards = np.asarray([e.reward for e in batch])
            loss = trainer.update(actions, log_probs, rewards)
            evaluations += batch
            bar.write(
                f"round {iteration + 1}/{s.iterations}: mean reward {rewards.mean():.4f}, "
                f"baseline {trainer.baseline:.4f}, ppo loss {loss:.4f}"
            )
    return evaluations


SEARCHES = {"exhaustive": exhaustive_search, "controller": controller_search}


def is_swish_like(candidate: Sequence[search_space.CoreUnit]) -> bool:
    """True if the candidate computes x * sigmoid(beta x) (beta trainable) or x * sigmoid(x), whatever its form:
    compared on a grid with every beta set to 0.5 and then to 2."""
    grid = jnp.linspace(-5.0, 5.0, 101)
    num_betas = len(search_space.beta_inits(candidate))
    for beta in (0.5, 2.0):
        values = np.asarray(search_space.evaluate(candidate, grid, jnp.full((num_betas, 1), beta)))
        forms = [np.asarray(grid * jax.nn.sigmoid(c * grid)) for c in (1.0, beta)]
        if not any(np.allclose(values, form, atol=1e-5) for form in forms):
            return False
    return True


def render_ranking(ranked: Sequence[Evaluation], rows: int | None = None) -> str:
    table = []
    for rank, e in enumerate(ranked[:rows], 1):
        swish = "yes" if is_swish_like(search_space.from_spec(e.spec)) else ""
        table.append([rank, f"`{e.name}`", f"{100 * e.accuracy:.2f}", swish])
    return report.markdown_table(["rank", "function", "validation acc. (%)", "Swish-like"], table)


def render_shapes(ranked: Sequence[Evaluation], path: str, title: str) -> None:
    """The top functions on [-5, 5] with every beta at its initial value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-5.0, 5.0, 401, dtype=np.float32)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for e in ranked:
        candidate = search_space.from_spec(e.spec)
        betas = jnp.asarray(search_space.beta_inits(candidate), jnp.float32).reshape(-1, 1)
        values = np.asarray(search_space.evaluate(candidate, jnp.asarray(grid), betas))
        ax.plot(grid, np.clip(values, -6, 6), label=f"{100 * e.accuracy:.1f}%  {e.name}")
    ax.set_xlabel("x")
    ax.set_ylim(-6, 6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def retrain(config: ConfigDict, best: Evaluation, workdir: str) -> tuple[dict[str, list[float]], sweep.Sweep, list]:
    """The best function and the baselines over seeds, through the reproduce script's sweep runner.

    Returns ({activation or best's name: test accuracies}, the sweep, its (point, metrics) results)."""
    s = config.search
    activations = [*s.retrain_baselines, best.spec]
    definition = sweep.Sweep(config=s.retrain_config, axes={"model.activation": activations, "seed": s.retrain_seeds})
    results = sweep.run_sweep(definition, train.train_and_evaluate, os.path.join(workdir, "retrain"))
    accuracies = reproduce.summarise(results)
    renamed = {best.name if name == best.spec else name: values for name, values in accuracies.items()}
    return renamed, definition, results


def run(
    config: ConfigDict,
    workdir: str,
    readme: str | None = None,
    command: str = "python -m papers.swish.search",
    trainer: ChildTrainer = child.train_children,
) -> dict:
    """The whole search in `workdir`, then the re-training; with `readme`, writes its two report blocks there.

    Returns a summary (also printed by main); `command` is quoted in the README as how the numbers were made."""
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    evaluator = Evaluator(config, workdir, trainer)
    evaluations = lookup(SEARCHES, config.search.method, "search method")(config, evaluator)
    search_minutes = (time.time() - started) / 60
    ranked = ranking(evaluations)
    if not ranked:
        raise RuntimeError("no candidate could be trained: every one was rejected; widen config.search's functions")
    distinct = {e.name: e for e in evaluations}
    rejected = [e for e in distinct.values() if e.rejected]
    setting = (
        f"{config.model.name} children on {config.dataset.name} ({config.dataset.train_split} -> "
        f"{config.dataset.eval_split}), {config.train.num_steps} steps of batch {config.dataset.batch_size}"
    )
    table = render_ranking(ranked)
    with open(os.path.join(workdir, "ranking.md"), "w") as f:
        f.write(table + "\n")
    top = ranked[: int(config.search.top_k)]
    swish_ranks = [rank for rank, e in enumerate(ranked, 1) if is_swish_like(search_space.from_spec(e.spec))]
    summary = {
        "method": config.search.method,
        "candidates": len(distinct),
        "trained": len(ranked),
        "rejected": len(rejected),
        "trained_this_run": evaluator.children_trained,
        "search_minutes": round(search_minutes, 1),
        "best": ranked[0].name,
        "best_accuracy": ranked[0].accuracy,
        "swish_like_ranks": swish_ranks,
    }
    print(json.dumps(summary), flush=True)
    retrain_started = time.time()
    accuracies, definition, results = retrain(config, ranked[0], workdir)
    retrain_minutes = (time.time() - retrain_started) / 60
    summary["retrain"] = accuracies
    if readme:
        folder = os.path.dirname(os.path.abspath(readme))
        render_shapes(
            top, os.path.join(folder, SEARCH_PLOT), f"top {len(top)} of {len(ranked)} trained candidates\n{setting}"
        )
        block = (
            f"{render_ranking(ranked, int(config.search.top_k))}\n\n![top functions]({SEARCH_PLOT})"
            f"\n\nSearched by `{command}` on {report.machine_description()}: "
            f"{len(distinct)} distinct candidates, {len(rejected)} rejected before training, {len(ranked)} trained "
            f"({setting}); Swish-like functions at rank(s) {swish_ranks or 'none'} of {len(ranked)}; this invocation "
            f"took {search_minutes:.0f} min for the search (cached candidates are not retrained)."
        )
        report.replace_block(readme, "search", block)
        reproduce.render_plot(
            accuracies, os.path.join(folder, RETRAIN_PLOT), "best found vs baselines, each dot a seed, bar = median"
        )
        base = sweep.load_config(definition.config)
        retrain_setting = (
            f"{base.model.name} on {base.dataset.name}, {base.train.num_steps} steps of batch {base.dataset.batch_size}"
        )
        retrain_root = os.path.join(workdir, "retrain")
        retrain_block = (
            f"{reproduce.render_table(accuracies)}\n\n![best found vs baselines]({RETRAIN_PLOT})"
            "\n\n"
            + sweep.provenance(
                f"`{command}`",
                definition.config,
                retrain_root,
                results,
                f"{retrain_setting}, test split",
                retrain_minutes,
            )
        )
        report.replace_block(readme, "search_retrain", retrain_block)
    return summary


flags.DEFINE_string("readme", None, "Write the ranking and the re-training into this README's blocks.")


def main(argv):
    run_flags = app.start(argv)
    command = f"python -m papers.swish.search --config={run_flags.config_spec} --workdir={run_flags.workdir}"
    if app.FLAGS.readme:
        command += f" --readme={app.FLAGS.readme}"
    summary = run(run_flags.config, run_flags.workdir, app.FLAGS.readme, command)
    print(json.dumps(summary))


if __name__ == "__main__":
    app.define_flags(__file__)
    app.run(main)
