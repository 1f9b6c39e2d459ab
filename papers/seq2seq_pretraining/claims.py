"""The claims of papers/seq2seq_pretraining/README.md as common.results records, from reproduce.py's summary.

Full pretraining against none, with all the parallel pairs and with a fifth of them: validation BLEU (beam)
against the seed spread, as reproduce.verdict judges it (BLEU below 1 for both models cannot judge it), gated on
the validation-NLL curves of both models reaching a plateau.
"""

import os
import statistics

from common import results, sweep
from papers.seq2seq_pretraining import reproduce

PAPER_GAIN = {
    1.0: "validation BLEU +2.0 (22.1 vs 20.1); newstest2014 +2.7 (24.0 vs 21.3)",
    0.2: "validation BLEU +3.8 with 20% of the WMT pairs (18.5 vs 14.7)",
}


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    groups = reproduce.summarise(reproduction.finished)
    stem = os.path.splitext(os.path.basename(reproduction.sweep_file))[0]
    figure = reproduce.CURVES_PLOT.format(sweep=stem)
    outcomes = []
    for fraction in sorted({key[0] for key in groups}, reverse=True):
        claim = f"Pretraining beats no pretraining with {fraction:.0%} of the parallel pairs"
        paper = PAPER_GAIN.get(fraction, "no number in the paper for this share")
        full, baseline = groups.get((fraction, "full")), groups.get((fraction, "no_pretraining"))
        if not full or not baseline:
            outcomes.append(results.Claim(claim, paper, "no runs of both models", "not tested", "sweep lacks them"))
            continue
        bleu_full, bleu_baseline = reproduce._mean(full, "valid_beam"), reproduce._mean(baseline, "valid_beam")
        spreads = [statistics.stdev([run["valid_beam"] for run in runs]) for runs in (full, baseline) if len(runs) > 1]
        spread = max(spreads, default=0.0)
        measured = (
            f"validation BLEU (beam) {bleu_full:.2f} vs {bleu_baseline:.2f} ({bleu_full - bleu_baseline:+.2f}, "
            f"larger seed sd {spread:.2f}, {min(len(full), len(baseline))} seed(s)); validation perplexity "
            f"{reproduce._mean(full, 'perplexity'):.1f} vs {reproduce._mean(baseline, 'perplexity'):.1f}"
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
            word = results.gap_against_spread(bleu_full - bleu_baseline, spread)
            verdict, why = results.gate_on_plateau(*results.lead_verdict(word, "pretraining"), *plateau)
        outcomes.append(results.Claim(claim, paper, measured, verdict, why, figure, plateau[0]))
    return outcomes
