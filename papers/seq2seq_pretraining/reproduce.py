"""Runs every ablation of seq2seq pretraining over seeds, and full vs no pretraining on 20% of the pairs, then
writes the BLEU tables (beside the paper's relative numbers), the learning curves and the verdict into
papers/seq2seq_pretraining/README.md.

  python -m papers.seq2seq_pretraining.reproduce [--sweep configs/sweeps/seq2seq_pretraining.py] [--workdir DIR]

The language models are trained once per seed under <workdir>/pretrained and every run of that seed starts from
them. Each run's final metrics are kept in its workdir (final.json), so an interrupted sweep resumes where it
stopped. Rows are validation BLEU with beam search (the paper's ablations are validation BLEU); test BLEU beside.
"""

import glob
import json
import os
import statistics

import numpy as np
from ml_collections import ConfigDict

from common import app, report, results, sweep
from common.train.metrics import read_metrics
from papers.seq2seq_pretraining import train

SWEEP_FILE = "configs/sweeps/seq2seq_pretraining.py"
BLOCK = "seq2seq_pretraining_{sweep}"
CURVES_PLOT = "{sweep}_curves.png"  # one figure per sweep file: the fast and the converged sweeps keep their own
# Validation BLEU relative to the full model (paper, Table 3 / Figure 3) and the low-resource point (Figure 3).
PAPER_RELATIVE = {
    "full": 0.0,
    "no_pretraining": -2.0,
    "encoder_only": -1.6,
    "decoder_only": -1.0,
    "embeddings_only": -2.0,
    "no_lm_objective": -2.0,
}
PAPER_FRACTION_BLEU = {
    (1.0, "full"): 22.1,
    (1.0, "no_pretraining"): 20.1,
    (0.2, "full"): 18.5,
    (0.2, "no_pretraining"): 14.7,
}


def train_once(config: ConfigDict, workdir: str) -> dict:
    """train.train_and_evaluate with the language models shared across the sweep (<root>/pretrained), its final
    metrics kept in `<workdir>/final.json`."""
    path = os.path.join(workdir, "final.json")
    if not os.path.exists(path):
        if not config.pretrained_dir:
            config = sweep.apply_overrides(
                config, {"pretrained_dir": os.path.join(os.path.dirname(workdir), "pretrained")}
            )
        final = train.train_and_evaluate(config, workdir)
        with open(path, "w") as f:
            json.dump(final, f)
    with open(path) as f:
        return json.load(f)


def _metric(metrics: dict, prefix: str) -> float:
    """The one metric whose name starts with `prefix` (the beam metric's name carries the beam size)."""
    names = [name for name in metrics if name.startswith(prefix)]
    return metrics[names[0]] if names else float("nan")


def summarise(finished: sweep.FinishedSweep) -> dict:
    """(train_fraction, ablation) -> list over seeds of {seed, bleu columns, perplexity}."""
    groups: dict = {}
    for point, metrics in finished.results:
        key = (float(point.get("train_fraction", finished.base.train_fraction)), point["ablation"])
        groups.setdefault(key, []).append(
            {
                "seed": point["seed"],
                "point": point,
                "valid_greedy": metrics["bleu/validation_greedy"],
                "valid_beam": _metric(metrics, "bleu/validation_beam"),
                "test_greedy": metrics["bleu/test_greedy"],
                "test_beam": _metric(metrics, "bleu/test_beam"),
                "perplexity": metrics.get("eval/perplexity", float("nan")),
            }
        )
    return groups


def _mean(runs, column) -> float:
    return statistics.mean(run[column] for run in runs)


def _compare(full: list, baseline: list, column: str) -> dict:
    """Full vs no pretraining on one column over seeds: results.compare_groups' means ("full", "no_pretraining"),
    gap, larger seed sd and word."""
    return results.compare_groups(
        [run[column] for run in full], [run[column] for run in baseline], ("full", "no_pretraining")
    )


def _mean_sd(runs, column, digits: int = 2) -> str:
    values = [run[column] for run in runs]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def render_ablations(groups: dict, fraction: float) -> str:
    full = groups.get((fraction, "full"))
    rows = []
    for ablation in train.ABLATIONS:
        runs = groups.get((fraction, ablation))
        if not runs:
            continue
        relative = f"{_mean(runs, 'valid_beam') - _mean(full, 'valid_beam'):+.2f}" if full else "n/a"
        rows.append(
            [
                ablation,
                len(runs),
                _mean_sd(runs, "valid_beam"),
                relative,
                f"{PAPER_RELATIVE[ablation]:+.1f}",
                _mean_sd(runs, "valid_greedy"),
                _mean_sd(runs, "test_beam"),
                _mean_sd(runs, "perplexity"),
            ]
        )
    header = [
        "ablation",
        "seeds",
        "valid BLEU (beam)",
        "vs full",
        "paper: vs full",
        "valid BLEU (greedy)",
        "test BLEU (beam)",
        "valid perplexity",
    ]
    return report.markdown_table(header, rows)


def render_fractions(groups: dict) -> str:
    rows = []
    for fraction in sorted({key[0] for key in groups}):
        for ablation in ("full", "no_pretraining"):
            runs = groups.get((fraction, ablation))
            if runs:
                rows.append(
                    [
                        f"{fraction:.0%}",
                        ablation,
                        len(runs),
                        _mean_sd(runs, "valid_beam"),
                        _mean_sd(runs, "test_beam"),
                        _mean_sd(runs, "perplexity"),
                        PAPER_FRACTION_BLEU[(fraction, ablation)],
                    ]
                )
    header = [
        "parallel pairs",
        "model",
        "seeds",
        "valid BLEU (beam)",
        "test BLEU (beam)",
        "valid perplexity",
        "paper: valid BLEU",
    ]
    return report.markdown_table(header, rows)


def verdict(groups: dict) -> str:
    """Full vs no pretraining per share of the pairs: validation BLEU (beam) against the seed spread, and validation
    perplexity (which still separates models whose BLEU is too low to)."""
    lines = []
    for fraction in sorted({key[0] for key in groups}, reverse=True):
        full, baseline = groups.get((fraction, "full")), groups.get((fraction, "no_pretraining"))
        if not full or not baseline:
            continue
        beam = _compare(full, baseline, "valid_beam")
        gap, spread = beam["gap"], beam["spread"]
        test_gap = _mean(full, "test_beam") - _mean(baseline, "test_beam")
        seeds = "1 seed, no spread" if min(len(full), len(baseline)) == 1 else f"largest seed sd {spread:.2f}"
        bleu = (
            f"validation BLEU {gap:+.2f} (full {_mean(full, 'valid_beam'):.2f} vs no pretraining "
            f"{_mean(baseline, 'valid_beam'):.2f}, {seeds}), test BLEU {test_gap:+.2f}"
        )
        ppl = _compare(full, baseline, "perplexity")
        ppl_full, ppl_baseline = ppl["full"], ppl["no_pretraining"]
        ppl_word = {"ahead": "higher", "behind": "lower", "level": "not clearly different"}[ppl["word"]]
        perplexity = (
            f"validation perplexity {ppl_full:.1f} with pretraining vs {ppl_baseline:.1f} without ({ppl_word} with "
            "pretraining, beyond the seed spread)"
        )
        if max(_mean(full, "valid_beam"), _mean(baseline, "valid_beam")) < 1.0:
            lines.append(
                f"**With {fraction:.0%} of the pairs, BLEU is below 1 for both models: too low to judge pretraining "
                f"by BLEU here.** The {perplexity}; {bleu}."
            )
        else:
            word = {"ahead": "helps", "behind": "hurts", "level": "does not clearly help"}[beam["word"]]
            lines.append(f"**With {fraction:.0%} of the pairs, pretraining {word} here**: {bleu}; {perplexity}.")
    lines.append(
        "The paper: +2.7 BLEU on newstest2014 (24.0 vs 21.3); +2.0 validation BLEU with all and +3.8 with 20% of "
        "the WMT pairs."
    )
    return "\n\n".join(lines)


def _curve(workdir: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [row for row in read_metrics(workdir) if row.get(name) is not None]
    return np.array([row["step"] for row in rows]), np.array([row[name] for row in rows])


def language_model_dir(root: str, seed: int, language: str) -> str | None:
    """Where the sweep under `root` trained the seed's `language` LM: <root>/pretrained in this process; inside the
    workdir of the trial that needed it first on Ray, where each trial trains as its main.py would."""
    tail = os.path.join("pretrained", f"seed{seed}", f"lm_{language}", "metrics.jsonl")
    found = sorted(glob.glob(os.path.join(root, tail))) + sorted(glob.glob(os.path.join(root, "*", tail)))
    return os.path.dirname(found[0]) if found else None


def render_curves(finished: sweep.FinishedSweep, root: str, path: str) -> None:
    """Validation perplexity per step: the language models (per seed), the seq2seq runs (mean over seeds, all
    pairs and 20%), and the training translation NLL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), dpi=110)
    seeds = sorted({point["seed"] for point, _ in finished.results})
    for seed in seeds:
        for language, style in ((finished.base.dataset.source, "-"), (finished.base.dataset.target, "--")):
            lm_dir = language_model_dir(root, seed, language)
            if lm_dir:
                steps, values = _curve(lm_dir, "eval/nll")
                axes[0].plot(steps, np.exp(values), style, label=f"{language} LM, seed {seed}")
    runs: dict = {}
    for point, _ in finished.results:
        fraction = float(point.get("train_fraction", finished.base.train_fraction))
        runs.setdefault((fraction, point["ablation"]), []).append(os.path.join(root, sweep.point_name(point)))
    colors = dict(zip(train.ABLATIONS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for (fraction, ablation), workdirs in sorted(runs.items(), reverse=True):
        style = "-" if fraction == 1.0 else ":"
        label = ablation + ("" if fraction == 1.0 else f" ({fraction:.0%} pairs)")
        for ax, name, transform in ((axes[1], "eval/nll", np.exp), (axes[2], "train/translation_nll", None)):
            curves = [_curve(w, name) for w in workdirs]
            length = min(len(steps) for steps, _ in curves)
            if not length:
                continue
            values = np.mean([values[:length] for _, values in curves], axis=0)
            ax.plot(
                curves[0][0][:length],
                transform(values) if transform else values,
                style,
                color=colors[ablation],
                label=label,
            )
    titles = (
        "language models: validation perplexity",
        "seq2seq: validation perplexity (mean over seeds)",
        "seq2seq: training translation NLL (nats/token)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=9)
        ax.set_yscale("log" if "perplexity" in title else "linear")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    groups = summarise(finished)
    curves_plot = CURVES_PLOT.format(sweep=reproduction.stem)
    render_curves(finished, reproduction.workdir, reproduction.plot_path(curves_plot))
    base = finished.base
    m = base.model
    setting = (
        f"En->De on {base.dataset.name} ({m.num_layers}-layer LSTMs of {m.hidden_dim}, vocabulary "
        f"{base.dataset.vocab_size}; LMs {base.pretrain.train.num_steps} steps, seq2seq {base.train.num_steps} steps "
        f"of batch {base.dataset.batch_size}; beam {base.decode.beam_size}, up to {base.decode.max_sentences} "
        "sentences per split)"
    )
    sections = [
        "Ablations, all the parallel pairs (mean ± sd over seeds; 'vs full' is validation BLEU, beam):\n\n"
        + render_ablations(groups, 1.0)
    ]
    if len({fraction for fraction, _ in groups}) > 1:
        sections.append("Less parallel data:\n\n" + render_fractions(groups))
    sections += [verdict(groups), f"![learning curves]({curves_plot})", reproduction.provenance(setting)]
    return "\n\n".join(sections)


def _paper_gain(fraction: float) -> str:
    full, baseline = PAPER_FRACTION_BLEU.get((fraction, "full")), PAPER_FRACTION_BLEU.get((fraction, "no_pretraining"))
    if full is None or baseline is None:
        return "no number in the paper for this share"
    gain = f"validation BLEU {full - baseline:+.1f} ({full} vs {baseline})"
    return gain + ("; newstest2014 +2.7 (24.0 vs 21.3)" if fraction == 1.0 else "")


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """Full vs no pretraining per share of the pairs for docs/results.md: validation BLEU (beam) against the seed
    spread, as `verdict` judges it, gated on both models' validation-NLL curves reaching a plateau."""
    groups = summarise(reproduction.finished)
    stem = reproduction.stem
    figure = CURVES_PLOT.format(sweep=stem)
    outcomes = []
    for fraction in sorted({key[0] for key in groups}, reverse=True):
        claim = f"Pretraining beats no pretraining with {fraction:.0%} of the parallel pairs"
        paper = _paper_gain(fraction)
        full, baseline = groups.get((fraction, "full")), groups.get((fraction, "no_pretraining"))
        if not full or not baseline:
            outcomes.append(results.Claim(claim, paper, "no runs of both models", "not tested", "sweep lacks them"))
            continue
        bleu = _compare(full, baseline, "valid_beam")
        bleu_full, bleu_baseline = bleu["full"], bleu["no_pretraining"]
        measured = (
            f"validation BLEU (beam) {bleu_full:.2f} vs {bleu_baseline:.2f} ({bleu['gap']:+.2f}, "
            f"larger seed sd {bleu['spread']:.2f}, {min(len(full), len(baseline))} seed(s)); validation perplexity "
            f"{_mean(full, 'perplexity'):.1f} vs {_mean(baseline, 'perplexity'):.1f}"
        )
        plateau = results.all_plateau(
            [
                results.runs_plateau(
                    [os.path.join(reproduction.workdir, sweep.point_name(run["point"])) for run in runs], "eval/nll"
                )
                for runs in (full, baseline)
            ]
        )
        if max(bleu_full, bleu_baseline) < 1.0:
            verdict, why = "not tested", "BLEU is below 1 for both models: too low to judge pretraining by BLEU"
        else:
            verdict, why = results.gate_on_plateau(*results.lead_verdict(bleu["word"], "pretraining"), *plateau)
        outcomes.append(results.Claim(claim, paper, measured, verdict, why, figure, plateau[0]))
    return outcomes


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train_once, render, claims))
