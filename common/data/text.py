"""English-German text pipelines: sentence pairs for translation and monolingual sentences for language models,
sharing one sentencepiece vocabulary.

`load_translation_dataset(name, ...)` returns a `TranslationDataset` (the parallel pairs, its `Tokenizer`, train
and eval iterators, the raw eval texts for BLEU); `load_language_model_dataset(name, tokenizer=..., ...)` returns a
`LanguageModelDataset` over monolingual text, tokenised with the translation dataset's tokenizer so the language
models and the translation model share one vocabulary. Sources are tfds datasets: the offline builders
common/data/builders/de_en_local and text_local, or the standard tfds `wmt14_translate/de-en` for users who have
it prepared.

Token ids. One joint English-German sentencepiece BPE model: pad 0, unk 1, bos 2, eos 3, then the pieces; characters
too rare for a piece of their own are spelled as UTF-8 byte pieces, so decode(encode(text)) == text.
A sequence is [bos] + ids + [eos], padded with pad after the end: `target` and `tokens` rows are that, and so are
`source` rows (the encoder reads what the source language model read). Models shift themselves: inputs
row[:, :-1], labels row[:, 1:]. The tokenizer is trained once per (dataset, vocab size) on the training text
(both sides of the parallel train split, topped up with monolingual sentences, at most
TOKENIZER_SENTENCES_PER_LANGUAGE per language) and saved in the dataset's tfds data dir, so every run and process
reads the same file.

Bucketing. A training batch is padded to the smallest length of `bucket_lengths(max_length)` (multiples of
BUCKET_STEP, and max_length) that holds its longest row; source and target share it. Sequences longer than
max_length are left out (and counted). Epoch e is the training examples shuffled by common/data/core.py's
train_batches (seed derived from (seed, e)), cut into chunks of k * batch_size examples; each chunk is sorted by
length, cut into k batches of similar lengths, and those are put in an order drawn from (seed, chunk index). So
batch s depends only on (seed, s), an epoch is a fixed number of batches, and `make_train_iterator(s)` yields
exactly what `make_train_iterator(0)` yields from batch s on. In a job of several processes every process reads
the whole (small) training set, builds the same global batches, and yields its rows of them, so all processes
agree on each batch's padded length; eval splits are divided between the processes.
"""

import dataclasses
import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from common.data import core
from common.data.builders import de_en_local, text_local
from common.registry import lookup

Batch = core.Batch

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
BUCKET_STEP = 8
BATCHES_PER_CHUNK = 16  # k: batches sorted together by length
MIN_VOCAB_SIZE = 300  # 4 special ids, 256 byte pieces for rare characters, and some real pieces
TOKENIZER_SENTENCES_PER_LANGUAGE = 40_000  # BPE trains on this many in seconds (unigram took minutes)
_BATCH_ORDER_STREAM = 2  # beside core's shuffle (0) and example (1) seed streams


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer.


class Tokenizer:
    """A sentencepiece model with fixed special ids: pad 0, unk 1, bos 2, eos 3."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, model_path: str):
        import sentencepiece

        self.model_path = model_path
        self._processor = sentencepiece.SentencePieceProcessor(model_file=model_path)
        specials = (self._processor.pad_id(), self._processor.unk_id(), self._processor.bos_id())
        if specials + (self._processor.eos_id(),) != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError(f"sentencepiece model {model_path} has special ids {specials}, expected 0, 1, 2, 3")

    @property
    def vocab_size(self) -> int:
        """Ids are in [0, vocab_size); at most the size asked for (smaller when the text has fewer pieces)."""
        return self._processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """The piece ids of `text`, without bos and eos."""
        return self._processor.encode(text)

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        return self._processor.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` up to the first eos; pad and bos are skipped."""
        ids = [int(i) for i in ids]
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID)]
        return self._processor.decode([i for i in ids if i not in (PAD_ID, BOS_ID)])

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_path!r}, vocab_size={self.vocab_size})"


def train_tokenizer(sentences_by_language: Sequence[Sequence[str]], vocab_size: int, model_path: str) -> None:
    """Trains a BPE sentencepiece model on the sentences and writes it to model_path (atomically)."""
    import sentencepiece

    directory = os.path.dirname(model_path)
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        prefix = os.path.join(scratch, "spm")
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter([s for sentences in sentences_by_language for s in sentences]),
            model_prefix=prefix,
            vocab_size=vocab_size,
            model_type="bpe",
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            character_coverage=0.9999,
            byte_fallback=True,  # rare characters become byte pieces, never unk: decode(encode(x)) == x
            normalization_rule_name="identity",  # the text is normalised already; decode(encode(x)) == x
            hard_vocab_limit=False,  # small (test) corpora get the pieces they have
            input_sentence_size=0,  # the caller caps the text, deterministically
            num_threads=1,
            minloglevel=2,
        )
        os.replace(f"{prefix}.model", model_path)


def _capped(sentences: Sequence[str], count: int) -> list[str]:
    """At most `count` of `sentences`, evenly spaced (so every source of a concatenation takes part)."""
    if len(sentences) <= count:
        return list(sentences)
    return [sentences[i] for i in np.linspace(0, len(sentences) - 1, count).round().astype(int)]


# ---------------------------------------------------------------------------------------------------------------
# Sources.


@dataclasses.dataclass(frozen=True)
class TextSpec:
    """Static facts about a text dataset, known without reading it."""

    tfds_name: str
    check_available: Callable[[], None] | None = None  # offline builders only: raises when a source is missing
    # Translation datasets: the monolingual datasets whose training text also trains the tokenizer.
    monolingual: tuple[str, ...] = ()

    @property
    def is_offline(self) -> bool:
        return self.check_available is not None


TRANSLATION_DATASETS: dict[str, TextSpec] = {
    "de_en_local": TextSpec("de_en_local", de_en_local.check_source_present, ("text_local/en", "text_local/de")),
    # A few hundred pairs that build in seconds: for tests and smoke configs.
    "de_en_local/tiny": TextSpec(
        "de_en_local/tiny", de_en_local.check_source_present, ("text_local/en_tiny", "text_local/de_tiny")
    ),
    # train: 4.5M pairs (tokenised in memory at load: minutes, a few GB); validation: newstest2013; test:
    # newstest2014. Text is read as stored (no normalisation); the tokenizer trains on its first train pairs.
    "wmt14_translate/de-en": TextSpec("wmt14_translate/de-en"),
}

LANGUAGE_MODEL_DATASETS: dict[str, TextSpec] = {
    f"text_local/{config}": TextSpec(
        f"text_local/{config}", functools.partial(text_local.check_sources_present, config[:2])
    )
    for config in ("en", "de", "en_tiny", "de_tiny")
}


def _prepared_builder(spec: TextSpec, name: str, table: dict[str, TextSpec], data_dir: str | None):
    """The prepared tfds builder: offline ones are prepared on first use (once across processes); nothing
    downloads."""
    core.hide_accelerators_from_tensorflow()
    if spec.is_offline:
        return core.prepare_offline(lambda: tfds.builder(spec.tfds_name, data_dir=data_dir), spec.check_available)
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise core.not_prepared_error(name, spec.tfds_name, builder, [n for n, s in table.items() if s.is_offline])
    return builder


def _read_texts(builder, split: str, keys: Sequence[str], limit: int | None = None) -> list[tuple[str, ...]]:
    """The examples of `split` (tfds split syntax) as tuples of str, one per key, in stored order."""
    elements = core.read_split(builder, split, lambda example: tuple(example[k] for k in keys), cache=False)
    if limit is not None:
        elements = elements.take(limit)
    texts = []
    for columns in elements.batch(4096).as_numpy_iterator():  # whole batches: per-element reads are slow
        texts += zip(*([value.decode("utf-8").strip() for value in column] for column in columns), strict=True)
    return texts


def load_tokenizer(name: str, vocab_size: int, data_dir: str | None = None) -> Tokenizer:
    """The tokenizer of translation dataset `name` with (at most) vocab_size pieces, trained on first use."""
    spec = lookup(TRANSLATION_DATASETS, name, "translation dataset")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE} (4 special ids, 256 bytes), got {vocab_size}")
    builder = _prepared_builder(spec, name, TRANSLATION_DATASETS, data_dir)
    model_path = os.path.join(builder.data_dir, f"sentencepiece_bpe_{vocab_size}.model")
    if not os.path.exists(model_path):
        with core.exclusive_lock(f"{model_path}.lock"):
            if not os.path.exists(model_path):  # another process may have trained it meanwhile
                cap = TOKENIZER_SENTENCES_PER_LANGUAGE
                pairs = _read_texts(builder, "train", ("en", "de"), limit=cap)
                by_language = {"en": [en for en, _ in pairs], "de": [de for _, de in pairs]}
                for monolingual_name in spec.monolingual:
                    monolingual_spec = LANGUAGE_MODEL_DATASETS[monolingual_name]
                    monolingual = _prepared_builder(monolingual_spec, monolingual_name, {}, data_dir)
                    language = monolingual_name.split("/")[1][:2]
                    sentences = [text for (text,) in _read_texts(monolingual, "train", ("text",))]
                    by_language[language] += _capped(sentences, cap - len(by_language[language]))
                started = time.perf_counter()
                train_tokenizer(list(by_language.values()), vocab_size, model_path)
                logging.info(
                    "trained the %d-piece tokenizer of %s on %d sentences in %.1f s",
                    vocab_size,
                    name,
                    sum(map(len, by_language.values())),
                    time.perf_counter() - started,
                )
    return Tokenizer(model_path)


# ---------------------------------------------------------------------------------------------------------------
# Sequences and bucketed batches.


def bucket_lengths(max_length: int, step: int = BUCKET_STEP) -> tuple[int, ...]:
    """The padded lengths of training batches: step, 2 step, ... below max_length, then max_length."""
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 ([bos], a token, [eos]), got {max_length}")
    return tuple(range(step, max_length, step)) + (max_length,)


@dataclasses.dataclass(frozen=True)
class Sequences:
    """Token rows of different lengths in one flat array: row i is values[starts[i] : starts[i + 1]]."""

    values: np.ndarray  # int32 [total tokens]
    starts: np.ndarray  # int64 [N + 1]

    @classmethod
    def from_ids(cls, ids: Sequence[Sequence[int]]) -> "Sequences":
        """Each row [bos] + ids + [eos]."""
        return cls.from_rows([np.asarray([BOS_ID, *row, EOS_ID], np.int32) for row in ids])

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray]) -> "Sequences":
        starts = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(row) for row in rows], out=starts[1:])
        return cls(np.concatenate(rows).astype(np.int32) if rows else np.zeros([0], np.int32), starts)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def select(self, indices: np.ndarray) -> "Sequences":
        return Sequences.from_rows([self.row(i) for i in indices])

    def row(self, index: int) -> np.ndarray:
        return self.values[self.starts[index] : self.starts[index + 1]]

    def padded(self, indices: np.ndarray, width: int) -> np.ndarray:
        """int32 [len(indices), width]: the rows, pad_id after their end (each row fits in width)."""
        out = np.full([len(indices), width], PAD_ID, np.int32)
        for out_row, index in zip(out, indices, strict=True):
            row = self.row(index)
            out_row[: len(row)] = row
        return out


def _chunking(num_examples: int, batch_size: int) -> tuple[int, int]:
    """(batches per chunk k, chunks per epoch) for a training set of num_examples."""
    batches_per_chunk = min(BATCHES_PER_CHUNK, num_examples // batch_size)
    if batches_per_chunk == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_examples} training sequences that fit")
    return batches_per_chunk, num_examples // (batches_per_chunk * batch_size)


def bucketed_train_batches(
    columns: dict[str, Sequences],
    *,
    seed: int,
    batch_size: int,
    max_length: int,
    start_step: int,
    shard: core.ProcessShard,
) -> Iterator[Batch]:
    """Forever from batch start_step on: {key: int32 [batch_size // shard.count, L]} with L from
    bucket_lengths(max_length), shared by every column (see the module docstring).

    columns: key -> the same N training sequences' rows (for translation: source and target), each <= max_length.
    """
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    local_batch_size = shard.local_batch_size(batch_size)
    num_examples = len(next(iter(columns.values())))
    batches_per_chunk, chunks_per_epoch = _chunking(num_examples, batch_size)
    chunk_size = batches_per_chunk * batch_size
    lengths = np.max([sequences.lengths for sequences in columns.values()], axis=0)
    buckets = np.asarray(bucket_lengths(max_length))
    first_chunk, batches_to_skip = divmod(start_step, batches_per_chunk)

    # core's stream over example indices: one "batch" of it is one chunk; the same on every process.
    chunks = core.train_batches(
        tf.data.Dataset.range(num_examples),
        lambda index, _: {"index": index},
        seed=seed,
        global_batch_size=chunk_size,
        steps_per_epoch=chunks_per_epoch,
        start_step=first_chunk,
        shuffle_buffer=num_examples,
    )
    for chunk_index, chunk in enumerate(chunks.as_numpy_iterator(), start=first_chunk):
        indices = chunk["index"]
        by_length = indices[np.argsort(lengths[indices], kind="stable")].reshape(batches_per_chunk, batch_size)
        order = np.random.default_rng([seed, _BATCH_ORDER_STREAM, chunk_index]).permutation(batches_per_chunk)
        for batch_indices in by_length[order[batches_to_skip:]]:
            width = int(buckets[np.searchsorted(buckets, lengths[batch_indices].max())])
            mine = batch_indices[shard.index * local_batch_size : (shard.index + 1) * local_batch_size]
            yield {key: sequences.padded(mine, width) for key, sequences in columns.items()}
        batches_to_skip = 0


def padded_eval_batches(
    columns: dict[str, Sequences], *, batch_size: int, max_length: int, shard: core.ProcessShard
) -> Iterator[Batch]:
    """One pass in batches of batch_size // shard.count rows, each column padded to max_length, plus "mask":
    float32 [rows], 0 for the all-pad rows that fill the last batches (common/data/core.eval_batches)."""
    local_batch_size = shard.local_batch_size(batch_size)
    num_rows = len(next(iter(columns.values())))
    every_row = np.arange(num_rows)
    elements = {key: sequences.padded(every_row, max_length) for key, sequences in columns.items()}
    elements["mask"] = np.ones([num_rows], np.float32)
    num_batches = None
    if shard.count > 1:
        num_batches = core.max_over_processes(-(-num_rows // local_batch_size))
    dataset = core.eval_batches(tf.data.Dataset.from_tensor_slices(elements), local_batch_size, num_batches)
    return dataset.as_numpy_iterator()


def keep_fitting(columns: dict[str, Sequences], max_length: int) -> tuple[dict[str, Sequences], int]:
    """The rows whose every column is at most max_length tokens long, and how many were left out."""
    fits = np.all([sequences.lengths <= max_length for sequences in columns.values()], axis=0)
    kept = np.flatnonzero(fits)
    return {key: sequences.select(kept) for key, sequences in columns.items()}, len(fits) - len(kept)


# ---------------------------------------------------------------------------------------------------------------
# Translation.


@dataclasses.dataclass(frozen=True)
class TranslationDataset:
    """What a translation model gets back, whatever the source.

    make_train_iterator(start_step=0) yields, forever from batch `start_step` on,
      {"source": int32 [B, L], "target": int32 [B, L]}, rows [bos] + ids + [eos] then pad, L from bucket_lengths.
    make_eval_iterator(split="validation") yields one pass over the pairs of `split` that fit max_length, with the
    same keys padded to max_length, plus "mask": float32 [B], 0 for rows that only fill the last batch.
    eval_texts(split) -> (sources, references): every pair of the split as text, for BLEU.
    With several processes, B is batch_size // process_count.
    """

    name: str
    source: str
    target: str
    tokenizer: Tokenizer
    batch_size: int
    max_length: int
    bucket_lengths: tuple[int, ...]
    num_train_examples: int  # pairs in the training stream (after train_fraction and the length limit)
    num_train_dropped: int  # training pairs left out for exceeding max_length
    steps_per_epoch: int
    make_train_iterator: Callable[..., Iterator[Batch]]
    make_eval_iterator: Callable[..., Iterator[Batch]]
    eval_texts: Callable[..., tuple[list[str], list[str]]]


def in_train_fraction(source: str, target: str, train_fraction: float) -> bool:
    """Whether the pair belongs to the fixed, seed-independent subset of that share of the training pairs (the
    subsets are nested: the 20% one lies inside the 50% one)."""
    return train_fraction >= 1.0 or de_en_local.stable_fraction(f"{source}\x00{target}", "train_fraction") < (
        train_fraction
    )


EVAL_SPLITS = ("validation", "test")


def load_translation_dataset(
    name: str,
    *,
    batch_size: int,
    max_length: int,
    vocab_size: int,
    seed: int = 0,
    source: str = "en",
    target: str = "de",
    train_fraction: float = 1.0,
    data_dir: str | None = None,
    shard: core.ProcessShard | None = None,
) -> TranslationDataset:
    """Builds the train and eval pipelines of translation dataset `name` (one of TRANSLATION_DATASETS).

    max_length: longest padded row in tokens, [bos] and [eos] included; longer training pairs are dropped.
    vocab_size: pieces of the joint tokenizer (trained on first use, then read from the data dir).
    source, target: "en" and "de" in either order.
    train_fraction: in (0, 1]; keeps a fixed share of the training pairs, the same for every seed.
    shard: the part of the eval data this process reads; None: this JAX process's. batch_size is global.
    """
    spec = lookup(TRANSLATION_DATASETS, name, "translation dataset")
    languages = {"en": "English", "de": "German"}
    lookup(languages, source, "source language")
    lookup(languages, target, "target language")
    if source == target:
        raise ValueError(f"source and target must differ, got {source!r} for both")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    buckets = bucket_lengths(max_length)
    core.check_seed(seed)
    shard = shard or core.ProcessShard.of_this_process()
    shard.local_batch_size(batch_size)

    tokenizer = load_tokenizer(name, vocab_size, data_dir)
    builder = _prepared_builder(spec, name, TRANSLATION_DATASETS, data_dir)

    def tokenized(pairs: Sequence[tuple[str, str]]) -> dict[str, Sequences]:
        return {
            "source": Sequences.from_ids(tokenizer.encode_many([s for s, _ in pairs])),
            "target": Sequences.from_ids(tokenizer.encode_many([t for _, t in pairs])),
        }

    train_pairs = [
        pair for pair in _read_texts(builder, "train", (source, target)) if in_train_fraction(*pair, train_fraction)
    ]
    train_columns, num_train_dropped = keep_fitting(tokenized(train_pairs), max_length)
    num_train = len(train_columns["source"])
    batches_per_chunk, chunks_per_epoch = _chunking(num_train, batch_size)

    def make_train_iterator(start_step: int = 0) -> Iterator[Batch]:
        return bucketed_train_batches(
            train_columns, seed=seed, batch_size=batch_size, max_length=max_length, start_step=start_step, shard=shard
        )

    def eval_texts(split: str = "validation") -> tuple[list[str], list[str]]:
        lookup(dict.fromkeys(EVAL_SPLITS), split, "eval split")
        pairs = _read_texts(builder, split, (source, target))
        return [s for s, _ in pairs], [t for _, t in pairs]

    @functools.cache
    def eval_columns(split: str) -> dict[str, Sequences]:
        return keep_fitting(tokenized(_read_texts(builder, shard.split(split), (source, target))), max_length)[0]

    def make_eval_iterator(split: str = "validation") -> Iterator[Batch]:
        lookup(dict.fromkeys(EVAL_SPLITS), split, "eval split")
        return padded_eval_batches(eval_columns(split), batch_size=batch_size, max_length=max_length, shard=shard)

    return TranslationDataset(
        name=name,
        source=source,
        target=target,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        bucket_lengths=buckets,
        num_train_examples=num_train,
        num_train_dropped=num_train_dropped,
        steps_per_epoch=batches_per_chunk * chunks_per_epoch,
        make_train_iterator=make_train_iterator,
        make_eval_iterator=make_eval_iterator,
        eval_texts=eval_texts,
    )


# ---------------------------------------------------------------------------------------------------------------
# Language models.


@dataclasses.dataclass(frozen=True)
class LanguageModelDataset:
    """Monolingual sentences for a language model.

    make_train_iterator(start_step=0) yields, forever from batch `start_step` on, {"tokens": int32 [B, L]}: rows
    [bos] + ids + [eos] then pad, L from bucket_lengths. make_eval_iterator() yields one pass over the validation
    sentences that fit max_length, "tokens" padded to max_length, plus "mask": float32 [B].
    """

    name: str
    tokenizer: Tokenizer
    batch_size: int
    max_length: int
    bucket_lengths: tuple[int, ...]
    num_train_examples: int  # sentences in the training stream
    num_train_dropped: int  # sentences left out for exceeding max_length
    steps_per_epoch: int
    make_train_iterator: Callable[..., Iterator[Batch]]
    make_eval_iterator: Callable[[], Iterator[Batch]]


def load_language_model_dataset(
    name: str,
    *,
    batch_size: int,
    max_length: int,
    tokenizer: Tokenizer,
    seed: int = 0,
    data_dir: str | None = None,
    shard: core.ProcessShard | None = None,
) -> LanguageModelDataset:
    """Builds the train and eval pipelines of monolingual dataset `name` (one of LANGUAGE_MODEL_DATASETS),
    tokenised with `tokenizer` (a translation dataset's, so the models share its vocabulary)."""
    spec = lookup(LANGUAGE_MODEL_DATASETS, name, "language model dataset")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    buckets = bucket_lengths(max_length)
    core.check_seed(seed)
    shard = shard or core.ProcessShard.of_this_process()
    shard.local_batch_size(batch_size)
    builder = _prepared_builder(spec, name, LANGUAGE_MODEL_DATASETS, data_dir)

    def tokenized(split: str) -> dict[str, Sequences]:
        texts = [text for (text,) in _read_texts(builder, split, ("text",))]
        return {"tokens": Sequences.from_ids(tokenizer.encode_many(texts))}

    train_columns, num_train_dropped = keep_fitting(tokenized("train"), max_length)
    num_train = len(train_columns["tokens"])
    batches_per_chunk, chunks_per_epoch = _chunking(num_train, batch_size)

    def make_train_iterator(start_step: int = 0) -> Iterator[Batch]:
        return bucketed_train_batches(
            train_columns, seed=seed, batch_size=batch_size, max_length=max_length, start_step=start_step, shard=shard
        )

    @functools.cache
    def eval_columns() -> dict[str, Sequences]:
        return keep_fitting(tokenized(shard.split("validation")), max_length)[0]

    def make_eval_iterator() -> Iterator[Batch]:
        return padded_eval_batches(eval_columns(), batch_size=batch_size, max_length=max_length, shard=shard)

    return LanguageModelDataset(
        name=name,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        bucket_lengths=buckets,
        num_train_examples=num_train,
        num_train_dropped=num_train_dropped,
        steps_per_epoch=batches_per_chunk * chunks_per_epoch,
        make_train_iterator=make_train_iterator,
        make_eval_iterator=make_eval_iterator,
    )
