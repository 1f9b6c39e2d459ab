"""Training for seq2seq pretraining: two language models, then the warm-started seq2seq model, then BLEU.

Stage 1 trains an English (source) and a German (target) LSTM language model on monolingual text, each with
`common.train.loop.train` in its own workdir (<pretrained_dir>/seed<seed>/lm_en, lm_de), so a sweep trains them
once per seed and every ablation starts from the same ones. Stage 2 builds the seq2seq model, copies the LM weights
the ablation selects into it (`config.train.init_from`, two named sources applied in order), and fine-tunes on
  loss = translation NLL + lm_weight * (source LM NLL on English + target LM NLL on German monolingual batches),
each term a mean over the real (non-padding) tokens. Then validation NLL / perplexity, and BLEU (sacrebleu's corpus
BLEU on detokenised greedy and beam-search translations against the held-out references) on validation and test,
written to <workdir>/bleu.json and returned with the final metrics.
"""

import dataclasses
import json
import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sacrebleu
from flax import nnx
from ml_collections import ConfigDict

from common.errors import ConfigError
from common.nn import seq2seq as seq2seq_lib
from common.registry import lookup
from common.train import checkpoint, loop, optim
from papers.seq2seq_pretraining import model

LANGUAGE_MODELS = ("source", "target")  # stage 1: the English and the German LM
BLEU_FILE = "bleu.json"
BLEU_SPLITS = ("validation", "test")

# Which LM subtrees go where in the seq2seq model ('lm/path->seq2seq/path', see checkpoint.warm_start).
SOURCE_LM_TO_ENCODER = (
    seq2seq_lib.SOURCE_LM_MAPPING
)  # embed, layers/0, softmax -> encoder/(embed, layers/0, lm_softmax)
TARGET_LM_TO_DECODER = seq2seq_lib.TARGET_LM_MAPPING  # embed, layers/0, softmax -> decoder/(embed, layers/0, softmax)


@dataclasses.dataclass(frozen=True)
class Ablation:
    """What the seq2seq model starts from: a mapping from each LM ('' : nothing), and whether the LM losses stay."""

    source_mapping: str
    target_mapping: str
    lm_objective: bool = True


ABLATIONS = {
    "full": Ablation(SOURCE_LM_TO_ENCODER, TARGET_LM_TO_DECODER),
    "no_pretraining": Ablation("", ""),
    "encoder_only": Ablation(SOURCE_LM_TO_ENCODER, ""),
    "decoder_only": Ablation("", TARGET_LM_TO_DECODER),
    "embeddings_only": Ablation("embed->encoder/embed", "embed->decoder/embed"),
    "no_lm_objective": Ablation(SOURCE_LM_TO_ENCODER, TARGET_LM_TO_DECODER, lm_objective=False),
}


def get_ablation(name: str) -> Ablation:
    return lookup(ABLATIONS, name, "ablation")


def check_config(config: ConfigDict) -> None:
    """Fields the run reads late (after pretraining), checked before anything starts."""
    get_ablation(config.ablation)
    if not 0.0 < config.train_fraction <= 1.0:
        raise ConfigError(f"train_fraction={config.train_fraction}: must be in (0, 1]")
    if config.decode.beam_size < 1:
        raise ConfigError(f"decode.beam_size={config.decode.beam_size}: must be a positive integer")


def lm_weight(config: ConfigDict) -> float:
    return float(config.lm_weight) if get_ablation(config.ablation).lm_objective else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Data.


def load_translation(config: ConfigDict):
    """The parallel pairs (common.data.text.TranslationDataset); its tokenizer is the joint vocabulary."""
    from common.data import text  # imported here: the losses and the warm start need no data pipeline

    ds = config.dataset
    return text.load_translation_dataset(
        ds.name,
        batch_size=ds.batch_size,
        max_length=ds.max_length,
        vocab_size=ds.vocab_size,
        seed=config.seed,
        source=ds.source,
        target=ds.target,
        train_fraction=config.train_fraction,
        data_dir=ds.data_dir,
    )


def load_monolingual(config: ConfigDict, side: str, tokenizer):
    """The source (English) or target (German) monolingual dataset, tokenised with the translation vocabulary."""
    from common.data import text

    ds = config.dataset
    name = lookup({"source": ds.source_lm, "target": ds.target_lm}, side, "language model side")
    return text.load_language_model_dataset(
        name, batch_size=ds.lm_batch_size, max_length=ds.max_length, tokenizer=tokenizer, seed=config.seed
    )


def fixed_width(rows: np.ndarray, width: int, pad_id: int) -> np.ndarray:
    """int [B, L] -> [B, width], padded at the end: one shape per run, so the step compiles once instead of once
    per length bucket (and per combination of buckets across the three streams)."""
    return np.pad(rows, ((0, 0), (0, width - rows.shape[1])), constant_values=pad_id)


def fixed_width_batches(make_train_iterator, width: int, pad_id: int):
    """make_train_iterator(start_step) whose every int row array is padded to `width`."""

    def make(start_step: int):
        for batch in make_train_iterator(start_step):
            yield {key: fixed_width(rows, width, pad_id) for key, rows in batch.items()}

    return make


def multitask_batches(translation, source_lm, target_lm):
    """make_train_iterator(start_step) for stage 2: each translation batch with an English and a German LM batch
    (source_lm [B', L], target_lm [B', L]); without LM datasets, translation batches alone. Each stream restarts at
    the step, so a resumed run sees what an uninterrupted one would."""

    def make_train_iterator(start_step: int):
        pairs = translation.make_train_iterator(start_step)
        if source_lm is None:
            yield from pairs
            return
        english, german = source_lm.make_train_iterator(start_step), target_lm.make_train_iterator(start_step)
        for batch, en, de in zip(pairs, english, german, strict=False):  # endless streams
            yield {**batch, "source_lm": en["tokens"], "target_lm": de["tokens"]}

    return fixed_width_batches(make_train_iterator, translation.max_length, translation.tokenizer.pad_id)


# ---------------------------------------------------------------------------------------------------------------
# Losses.


def token_nll(logits: jax.Array, labels: jax.Array, pad_id: int) -> tuple[jax.Array, jax.Array]:
    """(sum of nats over the real tokens, their count) for logits [B, T, V], labels int [B, T]; pad_id is masked."""
    mask = (labels != pad_id).astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    return (nll * mask).sum(), mask.sum()


def mean_nll(logits, labels, pad_id: int) -> jax.Array:
    total, count = token_nll(logits, labels, pad_id)
    return total / jnp.maximum(count, 1.0)


def language_model_loss(lm, batch: dict, rng: jax.Array, *, pad_id: int):
    """Next-token NLL per real token of batch["tokens"] [B, L] (inputs [:, :-1], labels [:, 1:])."""
    tokens = batch["tokens"]
    logits = lm(tokens[:, :-1], deterministic=False, rngs=nnx.Rngs(dropout=rng))
    loss = mean_nll(logits, tokens[:, 1:], pad_id)
    return loss, {"perplexity": jnp.exp(loss)}


def language_model_eval(lm, batch: dict, *, pad_id: int) -> dict[str, jax.Array]:
    tokens = batch["tokens"]
    labels = jnp.where(batch["mask"][:, None] > 0, tokens[:, 1:], pad_id)
    total, count = token_nll(lm(tokens[:, :-1], deterministic=True), labels, pad_id)
    return {"nll": total, "count": count}


def multitask_loss(seq2seq, batch: dict, rng: jax.Array, *, pad_id: int, weight: float):
    """translation NLL + weight * (source LM NLL + target LM NLL), each a mean over real tokens.

    batch: source [B, S], target [B, T] ([bos] ids [eos] padded); with weight > 0 also source_lm [B', L] and
    target_lm [B', L] monolingual token rows.
    """
    translation_rng, source_rng, target_rng = jax.random.split(rng, 3)
    target = batch["target"]
    logits = seq2seq(batch["source"], target[:, :-1], deterministic=False, rngs=nnx.Rngs(dropout=translation_rng))
    translation = mean_nll(logits, target[:, 1:], pad_id)
    metrics = {"translation_nll": translation, "translation_perplexity": jnp.exp(translation)}
    if not weight:
        return translation, metrics
    english, german = batch["source_lm"], batch["target_lm"]
    english_logits = seq2seq.source_lm_logits(english[:, :-1], deterministic=False, rngs=nnx.Rngs(dropout=source_rng))
    german_logits = seq2seq.target_lm_logits(german[:, :-1], deterministic=False, rngs=nnx.Rngs(dropout=target_rng))
    source_lm = mean_nll(english_logits, english[:, 1:], pad_id)
    target_lm = mean_nll(german_logits, german[:, 1:], pad_id)
    metrics.update(source_lm_nll=source_lm, target_lm_nll=target_lm)
    return translation + weight * (source_lm + target_lm), metrics


def translation_eval(seq2seq, batch: dict, *, pad_id: int) -> dict[str, jax.Array]:
    """Sums over the real target tokens of the real rows (mask 1) of an eval batch; the loop divides by count."""
    target = batch["target"]
    labels = jnp.where(batch["mask"][:, None] > 0, target[:, 1:], pad_id)
    total, count = token_nll(seq2seq(batch["source"], target[:, :-1], deterministic=True), labels, pad_id)
    return {"nll": total, "count": count}


def with_perplexity(metrics: dict[str, float]) -> dict[str, float]:
    if "eval/nll" in metrics:
        metrics = dict(metrics, **{"eval/perplexity": math.exp(min(metrics["eval/nll"], 50.0))})
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: the language models.


def pretrained_root(config: ConfigDict, workdir: str) -> str:
    return os.path.join(config.pretrained_dir or os.path.join(workdir, "pretrained"), f"seed{config.seed}")


def language_model_workdir(config: ConfigDict, workdir: str, side: str) -> str:
    language = lookup({"source": config.dataset.source, "target": config.dataset.target}, side, "language side")
    return os.path.join(pretrained_root(config, workdir), f"lm_{language}")


def pretrain_language_model(config: ConfigDict, workdir: str, side: str, tokenizer) -> dict[str, float]:
    """Trains (or resumes, or re-evaluates when finished) the `side` LM in its own workdir."""
    dataset = load_monolingual(config, side, tokenizer)
    lm = model.build_language_model(config, tokenizer.vocab_size, nnx.Rngs(config.seed))
    pad_id = tokenizer.pad_id
    task = loop.TrainTask(
        model=lm,
        loss_fn=lambda lm, batch, rng: language_model_loss(lm, batch, rng, pad_id=pad_id),
        make_train_iterator=fixed_width_batches(dataset.make_train_iterator, dataset.max_length, pad_id),
        eval_fn=lambda lm, batch: language_model_eval(lm, batch, pad_id=pad_id),
        make_eval_iterator=dataset.make_eval_iterator,
    )
    tx = optim.make_optimizer(config.pretrain.optimizer, config.pretrain.train.num_steps)
    lm_workdir = language_model_workdir(config, workdir, side)
    final = loop.train(task, tx, config.pretrain.train, lm_workdir, seed=config.seed)
    return with_perplexity(final)


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: the seq2seq model.


def warm_start_config(config: ConfigDict, workdir: str) -> ConfigDict:
    """config.train with init_from = {source_lm, target_lm}: the LM runs and mappings the ablation selects."""
    ablation = get_ablation(config.ablation)
    train_config = ConfigDict(config.train.to_dict())
    sources = {}
    for side, mapping in zip(LANGUAGE_MODELS, (ablation.source_mapping, ablation.target_mapping), strict=True):
        lm_workdir = language_model_workdir(config, workdir, side) if mapping else ""
        sources[f"{side}_lm"] = {"workdir": lm_workdir, "mapping": mapping, "part": "params"}
    train_config.init_from = ConfigDict(sources)
    return train_config


def build_task(config: ConfigDict, dataset, source_lm=None, target_lm=None) -> loop.TrainTask:
    """The stage-2 TrainTask: a fresh seq2seq model (the warm start happens in the loop) and the multitask loss."""
    tokenizer = dataset.tokenizer
    seq2seq = model.build_seq2seq(config, tokenizer.vocab_size, nnx.Rngs(config.seed))
    pad_id, weight = tokenizer.pad_id, lm_weight(config)
    return loop.TrainTask(
        model=seq2seq,
        loss_fn=lambda m, batch, rng: multitask_loss(m, batch, rng, pad_id=pad_id, weight=weight),
        make_train_iterator=multitask_batches(dataset, source_lm, target_lm),
        eval_fn=lambda m, batch: translation_eval(m, batch, pad_id=pad_id),
        make_eval_iterator=dataset.make_eval_iterator,
    )


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    """Both stages (each resumes from its checkpoints), then BLEU (kept in <workdir>/bleu.json once computed)."""
    ablation = get_ablation(config.ablation)
    dataset = load_translation(config)
    tokenizer = dataset.tokenizer
    final = {}
    needs_lms = [
        side for side, m in zip(LANGUAGE_MODELS, (ablation.source_mapping, ablation.target_mapping), strict=True) if m
    ]
    for side in needs_lms:
        lm_final = pretrain_language_model(config, workdir, side, tokenizer)
        final.update({f"{side}_lm/{k.split('/')[-1]}": v for k, v in lm_final.items() if k.startswith("eval/")})
    weight = lm_weight(config)
    monolingual = [load_monolingual(config, side, tokenizer) for side in LANGUAGE_MODELS] if weight else [None, None]
    task = build_task(config, dataset, *monolingual)
    tx = optim.make_optimizer(config.optimizer, config.train.num_steps)
    final.update(with_perplexity(loop.train(task, tx, warm_start_config(config, workdir), workdir, seed=config.seed)))
    seq2seq = task.model
    checkpoint.restore_weights(workdir, seq2seq)  # the loop trains a copy of the state; read back the final step
    final.update(bleu_scores(config, workdir, seq2seq, dataset))
    return final


# ---------------------------------------------------------------------------------------------------------------
# Translation and BLEU.


def encode_sources(tokenizer, sentences: list[str], max_length: int) -> np.ndarray:
    """Source sentences -> int32 [N, max_length] as the pipeline feeds them: [bos] ids [eos], padded; a longer
    sentence keeps its first max_length - 2 pieces (the training pairs leave such sentences out)."""
    rows = [[tokenizer.bos_id, *ids[: max_length - 2], tokenizer.eos_id] for ids in tokenizer.encode_many(sentences)]
    out = np.full((len(rows), max_length), tokenizer.pad_id, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_translator(seq2seq, config: ConfigDict, tokenizer, beam_size: int):
    """A compiled (source int32 [B, S]) -> best tokens int32 [B, max_length]: greedy when beam_size is 1, else the
    top beam."""
    graphdef, state = nnx.split(seq2seq)

    @jax.jit
    def translate(state, source):
        tokens, _ = seq2seq_lib.generate(
            nnx.merge(graphdef, state),
            source,
            max_length=config.decode.max_length,
            bos_id=tokenizer.bos_id,
            eos_id=tokenizer.eos_id,
            beam_size=beam_size,
            length_penalty=config.decode.length_penalty,
        )
        return tokens if beam_size == 1 else tokens[:, 0]

    return lambda source: np.asarray(translate(state, jnp.asarray(source)))


def translate_all(translate, tokenizer, sentences: list[str], config: ConfigDict) -> list[str]:
    """Translations of `sentences`, in batches of decode.batch_size (the last one padded, so one compile)."""
    size = config.decode.batch_size
    out = []
    for start in range(0, len(sentences), size):
        chunk = sentences[start : start + size]
        source = encode_sources(tokenizer, chunk + [""] * (size - len(chunk)), config.dataset.max_length)
        out += [tokenizer.decode(row) for row in translate(source)[: len(chunk)]]  # up to eos
    return out


def bleu_scores(config: ConfigDict, workdir: str, seq2seq, dataset) -> dict[str, float]:
    """Greedy and beam BLEU on validation and test (the first decode.max_sentences pairs of each), from the model
    as trained; kept in <workdir>/bleu.json with a few sample translations, so a rerun reads them back."""
    path = os.path.join(workdir, BLEU_FILE)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["metrics"]
    seq2seq.eval()
    tokenizer, limit = dataset.tokenizer, config.decode.max_sentences
    translators = {
        "greedy": make_translator(seq2seq, config, tokenizer, 1),
        f"beam{config.decode.beam_size}": make_translator(seq2seq, config, tokenizer, config.decode.beam_size),
    }
    metrics, samples, sizes = {}, {}, {}
    for split in BLEU_SPLITS:
        sources, references = dataset.eval_texts(split)
        sources, references = sources[:limit], references[:limit]
        sizes[split] = len(sources)
        for method, translate in translators.items():
            started = time.perf_counter()
            hypotheses = translate_all(translate, tokenizer, sources, config)
            seconds = time.perf_counter() - started
            metrics[f"bleu/{split}_{method}"] = sacrebleu.corpus_bleu(hypotheses, [references]).score
            metrics[f"decode/{split}_{method}_sentences_per_s"] = len(sources) / max(seconds, 1e-9)
            samples[f"{split}_{method}"] = [
                {"source": s, "reference": r, "hypothesis": h}
                for s, r, h in list(zip(sources, references, hypotheses, strict=True))[:5]
            ]
            logging.info("%s %s BLEU %.2f", split, method, metrics[f"bleu/{split}_{method}"])
    with open(path, "w") as f:
        json.dump({"metrics": metrics, "sentences": sizes, "samples": samples}, f, indent=1, ensure_ascii=False)
    return metrics


def build_for_dry_run(config: ConfigDict):
    """The seq2seq model (abstract) fed a length-max_length sentence as source and target prefix."""
    seq2seq = nnx.eval_shape(lambda: model.build_seq2seq(config, config.dataset.vocab_size, nnx.Rngs(config.seed)))
    return model.TranslationOnSource(seq2seq), (config.dataset.max_length,)
