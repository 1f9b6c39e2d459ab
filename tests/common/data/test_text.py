"""The English-German text pipelines: the Ding pairs and their splits, the monolingual text, the tokenizer, aligned
and bucketed batches, exact resume, the fixed train_fraction subset, and error messages."""

import itertools
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from common.data import core, text
from common.data.builders import de_en_local, text_local
from common.registry import UnknownNameError

TINY = "de_en_local/tiny"
VOCAB = 1000
MAX_LENGTH = 40
HAVE_SOURCES = os.path.isfile(de_en_local.DING_PATH) and all(
    os.path.isdir(path) for path in (text_local.FORTUNES_DIR, text_local.MANPAGES_DIR)
)
pytestmark = pytest.mark.skipif(
    not HAVE_SOURCES,
    reason="`sudo apt-get install trans-de-en bible-kjv fortunes-de manpages-de` (`make data`) installs the text",
)


# ---------------------------------------------------------------------------------------------------------------
# Text cleaning


def test_normalise_strips_annotations_and_keeps_the_sentence():
    assert de_en_local.normalise("Das  Haus {n} ist [ugs.] alt (sehr) .") == "Das Haus ist alt."
    assert de_en_local.normalise("I have a feeling (that) it’s “new” [Am.]!") == 'I have a feeling it\'s "new"!'
    assert de_en_local.normalise("(a (nested) gloss) Er kommt.") == "Er kommt."
    assert de_en_local.is_sentence("Er hat vom Kuchen genascht.")
    assert not de_en_local.is_sentence("Er kam.")  # fewer than 4 words
    assert not de_en_local.is_sentence("the employ of sb.")  # lower-case, a placeholder
    assert not de_en_local.is_sentence("Das hängt von etw. ab.")
    assert de_en_local.split_sentences("Er kam. Sie ging! 2 Tage.") == ["Er kam.", "Sie ging!", "2 Tage."]


def test_roff_keeps_running_text():
    roff = '.\\" comment\n.TH LS 1\n.SH BESCHREIBUNG\nDer Befehl \\fBls\\fP listet\n.B alle\nDateien auf.\n.PP\nNeu.\n'
    assert list(text_local.roff_paragraphs(roff)) == ["Der Befehl ls listet alle Dateien auf.", "Neu."]
    assert list(text_local.sentences_of("Der Befehl ls listet alle Dateien auf. Noch ein Satz hier.")) == [
        "Der Befehl ls listet alle Dateien auf.",
        "Noch ein Satz hier.",
    ]
    assert not text_local.keep("Mit der Option --all listet ls alles.")  # markup


def test_full_splits_share_no_sentence_and_tiny_is_a_subset():
    full = de_en_local.assign_splits(de_en_local.read_pairs())
    tiny = de_en_local.assign_splits(de_en_local.read_pairs(), de_en_local.TINY_PER_MILLE)
    sizes = {split: len(pairs) for split, pairs in full.items()}
    assert sum(sizes.values()) == len(de_en_local.read_pairs()) > 15_000
    for split, percent in de_en_local.SPLIT_PERCENT.items():  # groups by hash: near the nominal shares
        assert abs(sizes[split] / sum(sizes.values()) - percent / 100) < 0.02, sizes
    for language in (0, 1):
        sides = {split: {pair[language] for pair in pairs} for split, pairs in full.items()}
        for first, second in itertools.combinations(sides, 2):
            assert not sides[first] & sides[second], (first, second)
    for split, pairs in tiny.items():
        assert set(pairs) <= set(full[split]) and len(pairs) > 0
    assert 200 < sum(map(len, tiny.values())) < 800


# ---------------------------------------------------------------------------------------------------------------
# The tiny datasets and the pipelines over them


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """One tfds data dir for this module, so the tiny datasets and tokenizer are built once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def dataset(data_dir) -> text.TranslationDataset:
    return text.load_translation_dataset(TINY, batch_size=4, max_length=MAX_LENGTH, vocab_size=VOCAB, data_dir=data_dir)


@pytest.fixture(scope="module")
def stored(data_dir, dataset) -> dict[str, list[tuple[str, str]]]:
    """split -> the stored (en, de) pairs of the tiny dataset."""
    builder = tfds.builder(TINY, data_dir=data_dir)
    return {split: text._read_texts(builder, split, ("en", "de")) for split in ("train", "validation", "test")}


def test_stored_pairs_are_the_selection(stored):
    expected = de_en_local.assign_splits(de_en_local.read_pairs(), de_en_local.TINY_PER_MILLE)
    assert {split: sorted(pairs) for split, pairs in stored.items()} == {
        split: sorted(pairs) for split, pairs in expected.items()
    }


def test_tokenizer_round_trip_and_special_ids(dataset, stored, data_dir):
    tokenizer = dataset.tokenizer
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.vocab_size <= VOCAB and tokenizer.model_path.startswith(data_dir)
    for english, german in stored["train"][:50]:
        for sentence in (english, german):
            ids = tokenizer.encode(sentence)
            assert min(ids) > 3 and tokenizer.decode(ids) == sentence  # byte pieces spell rare characters
            assert tokenizer.decode([2, *ids, 3, 17, 18, 0]) == sentence  # bos skipped, stops at eos
    # Held-out sentences use pieces too (no unk for ordinary German letters).
    english, german = stored["test"][0]
    assert 1 not in tokenizer.encode(german.lower())
    # The second load reads the saved model instead of training again.
    again = text.load_tokenizer(TINY, VOCAB, data_dir)
    assert again.model_path == tokenizer.model_path and again.encode(german) == tokenizer.encode(german)


def test_train_pairs_stay_aligned_through_tokens_and_buckets(dataset, stored):
    pairs = set(stored["train"])
    tokenizer = dataset.tokenizer
    assert dataset.bucket_lengths == (8, 16, 24, 32, 40)
    seen_widths = set()
    for batch in itertools.islice(dataset.make_train_iterator(), 2 * dataset.steps_per_epoch):
        assert set(batch) == {"source", "target"}
        assert batch["source"].shape == batch["target"].shape and batch["source"].shape[0] == 4
        width = batch["source"].shape[1]
        assert width in dataset.bucket_lengths and batch["source"].dtype == np.int32
        seen_widths.add(width)
        for source_row, target_row in zip(batch["source"], batch["target"], strict=True):
            for row in (source_row, target_row):
                length = int(np.sum(row != 0))
                assert row[0] == 2 and row[length - 1] == 3 and np.all(row[length:] == 0)
            assert (tokenizer.decode(source_row), tokenizer.decode(target_row)) in pairs
        # The smallest bucket that holds the longest row.
        longest = max(int(np.sum(batch[key] != 0, axis=1).max()) for key in batch)
        assert width == min(b for b in dataset.bucket_lengths if b >= longest)
    assert len(seen_widths) >= 2


def test_each_epoch_shows_every_kept_pair_at_most_once(dataset, stored):
    assert dataset.num_train_examples + dataset.num_train_dropped == len(stored["train"])
    for epoch in range(2):
        start = epoch * dataset.steps_per_epoch
        batches = itertools.islice(dataset.make_train_iterator(start), dataset.steps_per_epoch)
        rows = [row.tobytes() for batch in batches for row in np.concatenate([batch["source"], batch["target"]], 1)]
        assert len(rows) == dataset.steps_per_epoch * 4 and len(set(rows)) == len(rows)


def test_resume_from_any_step_gives_the_same_batches(dataset):
    total = dataset.steps_per_epoch + 20  # crosses an epoch and several chunks
    reference = list(itertools.islice(dataset.make_train_iterator(0), total))
    for start in (1, 15, 16, dataset.steps_per_epoch - 1, dataset.steps_per_epoch + 3):
        resumed = list(itertools.islice(dataset.make_train_iterator(start), total - start))
        for expected, got in zip(reference[start:], resumed, strict=True):
            for key in expected:
                np.testing.assert_array_equal(expected[key], got[key])


def test_seed_changes_the_order(data_dir, dataset):
    other = text.load_translation_dataset(
        TINY, batch_size=4, max_length=MAX_LENGTH, vocab_size=VOCAB, seed=1, data_dir=data_dir
    )
    first, second = next(dataset.make_train_iterator()), next(other.make_train_iterator())
    assert first["source"].shape != second["source"].shape or not np.array_equal(first["source"], second["source"])


def test_processes_take_their_rows_of_the_same_global_batch(data_dir, dataset):
    options = dict(batch_size=4, max_length=MAX_LENGTH, vocab_size=VOCAB, data_dir=data_dir)
    halves = [text.load_translation_dataset(TINY, **options, shard=core.ProcessShard(i, 2)) for i in range(2)]
    streams = [half.make_train_iterator(5) for half in halves]
    for whole in itertools.islice(dataset.make_train_iterator(5), 6):
        parts = [next(stream) for stream in streams]
        for key in whole:
            np.testing.assert_array_equal(np.concatenate([part[key] for part in parts]), whole[key])


def test_train_fraction_is_a_fixed_subset(data_dir, stored):
    def epoch_pairs(seed: int, fraction: float) -> tuple[set, int]:
        ds = text.load_translation_dataset(
            TINY, batch_size=4, max_length=MAX_LENGTH, vocab_size=VOCAB, seed=seed, train_fraction=fraction,
            data_dir=data_dir,
        )  # fmt: skip
        decode = ds.tokenizer.decode
        batches = itertools.islice(ds.make_train_iterator(), ds.steps_per_epoch)
        return {(decode(s), decode(t)) for b in batches for s, t in zip(b["source"], b["target"], strict=True)}, (
            ds.num_train_examples + ds.num_train_dropped
        )

    half_seed0, size = epoch_pairs(0, 0.5)
    half_seed1, same_size = epoch_pairs(1, 0.5)
    expected = {pair for pair in stored["train"] if text.in_train_fraction(*pair, 0.5)}
    assert size == same_size == len(expected) and 0.35 < size / len(stored["train"]) < 0.65
    assert half_seed0 <= expected and half_seed1 <= expected
    fifth = {pair for pair in stored["train"] if text.in_train_fraction(*pair, 0.2)}
    assert fifth <= expected  # nested
    with pytest.raises(ValueError, match="train_fraction must be in"):
        text.load_translation_dataset(TINY, batch_size=4, max_length=8, vocab_size=VOCAB, train_fraction=0.0)


def test_eval_batches_hold_every_fitting_pair_once(dataset, stored):
    tokenizer = dataset.tokenizer
    for split in ("validation", "test"):
        batches = list(dataset.make_eval_iterator(split))
        real = []
        for batch in batches:
            assert batch["source"].shape == (4, MAX_LENGTH) and batch["mask"].shape == (4,)
            for source_row, target_row, mask in zip(batch["source"], batch["target"], batch["mask"], strict=True):
                if mask:
                    real.append((tokenizer.decode(source_row), tokenizer.decode(target_row)))
                else:
                    assert not source_row.any() and not target_row.any()
        fitting = [p for p in stored[split] if max(len(tokenizer.encode(s)) for s in p) + 2 <= MAX_LENGTH]
        assert real == fitting and len(batches) == -(-len(fitting) // 4)
        assert dataset.eval_texts(split) == ([en for en, _ in stored[split]], [de for _, de in stored[split]])


def test_german_to_english_swaps_the_sides(data_dir, dataset, stored):
    reverse = text.load_translation_dataset(
        TINY, batch_size=4, max_length=MAX_LENGTH, vocab_size=VOCAB, source="de", target="en", data_dir=data_dir
    )
    sources, references = reverse.eval_texts("test")
    assert sources == [de for _, de in stored["test"]] and references == [en for en, _ in stored["test"]]
    batch = next(reverse.make_train_iterator())
    assert (reverse.tokenizer.decode(batch["target"][0]), reverse.tokenizer.decode(batch["source"][0])) in set(
        stored["train"]
    )


def test_language_model_batches_are_monolingual_sentences(data_dir, dataset):
    held_out = de_en_local.held_out_sentences()
    for language in ("en", "de"):
        name = f"text_local/{language}_tiny"
        lm = text.load_language_model_dataset(
            name, batch_size=4, max_length=MAX_LENGTH, tokenizer=dataset.tokenizer, data_dir=data_dir
        )
        builder = tfds.builder(name, data_dir=data_dir)
        splits = {s: [t for (t,) in text._read_texts(builder, s, ("text",))] for s in ("train", "validation")}
        assert not {t.casefold() for t in splits["train"] + splits["validation"]} & held_out[language]
        assert not set(splits["train"]) & set(splits["validation"])
        train = set(splits["train"])
        for batch in itertools.islice(lm.make_train_iterator(3), 10):
            assert set(batch) == {"tokens"} and batch["tokens"].shape[1] in lm.bucket_lengths
            assert all(lm.tokenizer.decode(row) in train for row in batch["tokens"])
        resumed = next(lm.make_train_iterator(5))
        from_three = list(itertools.islice(lm.make_train_iterator(3), 3))
        np.testing.assert_array_equal(resumed["tokens"], from_three[2]["tokens"])
        masks = np.concatenate([batch["mask"] for batch in lm.make_eval_iterator()])
        assert 0 < masks.sum() <= len(splits["validation"])


# ---------------------------------------------------------------------------------------------------------------
# Errors


def test_missing_dictionary_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setattr(de_en_local, "DING_PATH", str(tmp_path / "absent"))
    with pytest.raises(core.DatasetNotAvailableError, match=r"sudo apt-get install trans-de-en") as error:
        text.load_translation_dataset(TINY, batch_size=4, max_length=16, vocab_size=VOCAB, data_dir=str(tmp_path))
    assert "wmt14_translate/de-en" in str(error.value)


def test_missing_german_text_names_the_apt_package(tmp_path, monkeypatch, dataset):
    monkeypatch.setattr(text_local, "FORTUNES_DIR", str(tmp_path / "absent"))
    with pytest.raises(core.DatasetNotAvailableError, match=r"sudo apt-get install fortunes-de"):
        text.load_language_model_dataset(
            "text_local/de_tiny", batch_size=4, max_length=16, tokenizer=dataset.tokenizer, data_dir=str(tmp_path)
        )


def test_unknown_names_list_the_choices(tmp_path):
    with pytest.raises(UnknownNameError, match=r"unknown translation dataset 'wmt15'.*de_en_local/tiny"):
        text.load_translation_dataset("wmt15", batch_size=4, max_length=16, vocab_size=VOCAB)
    with pytest.raises(UnknownNameError, match=r"unknown language model dataset 'text_local/fr'.*text_local/de"):
        text.load_language_model_dataset("text_local/fr", batch_size=4, max_length=16, tokenizer=None)
    with pytest.raises(UnknownNameError, match=r"unknown source language 'fr'; valid choices: de, en"):
        text.load_translation_dataset(TINY, batch_size=4, max_length=16, vocab_size=VOCAB, source="fr")


def test_unprepared_wmt14_says_how_to_get_it(tmp_path):
    with pytest.raises(core.DatasetNotAvailableError, match=r"tfds build wmt14_translate/de-en.*de_en_local"):
        text.load_translation_dataset(
            "wmt14_translate/de-en", batch_size=4, max_length=16, vocab_size=VOCAB, data_dir=str(tmp_path)
        )
