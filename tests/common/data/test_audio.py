"""The speech pipeline: mu-law values, the espeak-ng corpus builder, windows against the stored audio, exact resume,
seeds and error messages."""

import dataclasses
import itertools
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from common.data import audio, core
from common.data.builders import espeak_speech_local
from common.registry import UnknownNameError

TINY = "espeak_speech_local/tiny"
HAVE_PROGRAMS = all(shutil.which(program) for program in espeak_speech_local.REQUIRED_PROGRAMS)
needs_espeak = pytest.mark.skipif(
    not HAVE_PROGRAMS,
    reason="espeak-ng or bible is not on PATH: `sudo apt-get install espeak-ng bible-kjv` (`make data`) installs them",
)


# ---------------------------------------------------------------------------------------------------------------
# mu-law


def test_mu_law_known_values():
    # Codes by hand from y = sign(x) ln(1 + 255|x|) / ln 256, code = floor((y + 1) / 2 * 255 + 0.5).
    np.testing.assert_array_equal(audio.mu_law_encode(np.array([-1.0, -0.5, 0.0, 0.5, 1.0])), [0, 16, 128, 239, 255])
    np.testing.assert_array_equal(audio.mu_law_encode(np.array([-3.0, 2.0])), [0, 255])  # clipped
    np.testing.assert_allclose(audio.mu_law_decode(np.array([0, 255])), [-1.0, 1.0], atol=1e-6)
    assert audio.mu_law_encode(np.float32(0.0)).dtype == np.int32
    assert audio.mu_law_decode(np.array([128])).dtype == np.float32
    assert 0 < audio.mu_law_decode(np.array(128)) < 1e-4  # the code of silence decodes to almost 0


def test_mu_law_round_trip():
    codes = np.arange(256)
    np.testing.assert_array_equal(audio.mu_law_encode(audio.mu_law_decode(codes)), codes)  # exact on the grid
    x = np.linspace(-1, 1, 100_001, dtype=np.float32)
    restored = audio.mu_law_decode(audio.mu_law_encode(x))
    # |x| + 1/255 = 256^|y| / 255, and rounding moves y by at most half a code step (1/255): the error is at most
    # (|x| + 1/255) (256^(1/255) - 1), about 2.2% of |x|.
    assert np.all(np.abs(restored - x) <= (np.abs(x) + 1 / 255) * (256 ** (1 / 255) - 1) + 1e-6)
    assert np.all(np.diff(audio.mu_law_encode(x)) >= 0)


def test_mu_law_numpy_jax_and_jit_agree():
    x = np.random.default_rng(0).uniform(-1, 1, (3, 50)).astype(np.float32)
    codes = audio.mu_law_encode(x)
    jax_codes = jax.jit(audio.mu_law_encode)(jnp.asarray(x))
    assert isinstance(jax_codes, jax.Array) and jax_codes.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(jax_codes), codes)
    decoded = jax.jit(audio.mu_law_decode)(jax_codes)
    assert isinstance(decoded, jax.Array)
    np.testing.assert_allclose(np.asarray(decoded), audio.mu_law_decode(codes), rtol=1e-6, atol=1e-7)


def test_resampling_keeps_the_pitch():
    rate = espeak_speech_local.ESPEAK_SAMPLE_RATE
    tone = (10_000 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.int16)  # 1 s of 440 Hz
    resampled = espeak_speech_local.resample_int16(tone, rate, 16_000)
    assert resampled.dtype == np.int16 and len(resampled) == 16_000
    assert np.argmax(np.abs(np.fft.rfft(resampled))) == 440  # 1 Hz bins over 1 s


# ---------------------------------------------------------------------------------------------------------------
# The espeak-ng corpus and the pipeline over it


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """One tfds data dir for this module, so the tiny corpus is synthesised once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def stored(data_dir) -> dict[str, list[dict]]:
    """The tiny corpus as stored: split -> its examples (numpy) in key order."""
    builder = audio.get_speech_builder(TINY, data_dir)
    return {
        split: sorted(tfds.as_numpy(builder.as_dataset(split=split)), key=lambda example: example["id"])
        for split in ("train", "test")
    }


def codes_of(samples: np.ndarray) -> np.ndarray:
    return audio.mu_law_encode(samples / audio.INT16_SCALE)


@needs_espeak
def test_tiny_corpus_is_espeak_reading_the_selected_verses(stored):
    verses = espeak_speech_local.select_verses(espeak_speech_local.read_verses(), 8)
    expected = {
        split: sorted(
            (reference.encode(), text.encode(), index % 4)
            for index, (reference, text) in enumerate(verses)
            if espeak_speech_local.split_of(index, test_every=2) == split
        )
        for split in ("train", "test")
    }
    for split, examples in stored.items():
        assert sorted((ex["id"], ex["text"], ex["speaker"]) for ex in examples) == expected[split]
        assert sorted(ex["speaker"] for ex in examples) == [0, 1, 2, 3]  # every voice in every split
        for example in examples:
            speech = example["speech"]
            assert speech.dtype == np.int16 and np.abs(speech).max() > 3000  # audible speech
            seconds_per_char = len(speech) / espeak_speech_local.SAMPLE_RATE / len(example["text"])
            assert 0.03 < seconds_per_char < 0.12, seconds_per_char  # 16 kHz, at a speaking rate
    # Pronounced text, not a constant: a verse in a second voice sounds different.
    first, second = stored["train"][0]["speech"], stored["train"][1]["speech"]
    assert len(first) != len(second) or not np.array_equal(first, second)


@needs_espeak
def test_train_windows_are_slices_of_their_speakers_utterances(data_dir, stored):
    segment_length = 64
    ds = audio.load_audio_dataset(TINY, batch_size=2, segment_length=segment_length, data_dir=data_dir)
    assert (ds.sample_rate, ds.num_classes, ds.num_speakers) == (16_000, 256, 4)
    assert (ds.num_train_examples, ds.num_eval_examples, ds.steps_per_epoch) == (4, 4, 2)
    utterance_codes = {int(ex["speaker"]): codes_of(ex["speech"]) for ex in stored["train"]}
    batches = list(itertools.islice(ds.make_train_iterator(), 6))
    for epoch in range(3):
        speakers = np.concatenate([b["speaker"] for b in batches[2 * epoch : 2 * epoch + 2]])
        assert sorted(speakers) == [0, 1, 2, 3]  # each utterance once per epoch
    for batch in batches:
        assert batch["audio"].shape == (2, segment_length + 1) and batch["audio"].dtype == np.int32
        assert batch["speaker"].shape == (2,) and batch["speaker"].dtype == np.int32
        assert batch["audio"].min() >= 0 and batch["audio"].max() <= 255
        for row, speaker in zip(batch["audio"], batch["speaker"], strict=True):
            windows = np.lib.stride_tricks.sliding_window_view(utterance_codes[int(speaker)], segment_length + 1)
            assert np.any(np.all(windows == row, axis=1))
    assert len({b["audio"].tobytes() for b in batches}) == len(batches)


@needs_espeak
def test_short_utterances_are_padded_with_silence(data_dir, stored):
    longest = max(len(ex["speech"]) for ex in stored["train"])
    ds = audio.load_audio_dataset(TINY, batch_size=4, segment_length=longest + 100, data_dir=data_dir)
    batch = next(ds.make_train_iterator())
    by_speaker = {int(ex["speaker"]): codes_of(ex["speech"]) for ex in stored["train"]}
    for row, speaker in zip(batch["audio"], batch["speaker"], strict=True):
        codes = by_speaker[int(speaker)]
        np.testing.assert_array_equal(row[: len(codes)], codes)
        assert np.all(row[len(codes) :] == audio.mu_law_encode(0.0)) and audio.mu_law_encode(0.0) == 128


@needs_espeak
def test_eval_windows_tile_the_test_split(data_dir, stored):
    segment_length = 5000
    ds = audio.load_audio_dataset(TINY, batch_size=3, segment_length=segment_length, data_dir=data_dir)
    batches = list(ds.make_eval_iterator())
    assert batches and all(b["audio"].shape == (3, segment_length + 1) for b in batches)
    assert all(b["mask"].shape == (3, segment_length) and b["mask"].dtype == np.float32 for b in batches)
    audio_rows = np.concatenate([b["audio"] for b in batches])
    mask_rows = np.concatenate([b["mask"] for b in batches])
    speakers = np.concatenate([b["speaker"] for b in batches])
    # Rebuild each utterance from its windows: the first sample of the first window, then every real target.
    row = 0
    order = [int(s) for s in speakers[mask_rows.sum(axis=1) > 0]]
    by_speaker = {int(ex["speaker"]): codes_of(ex["speech"]) for ex in stored["test"]}
    for speaker, _ in itertools.groupby(order):
        codes = by_speaker[speaker]
        num_windows = -(-(len(codes) - 1) // segment_length)
        windows = audio_rows[row : row + num_windows]
        masks = mask_rows[row : row + num_windows]
        assert np.all(speakers[row : row + num_windows] == speaker)
        rebuilt = np.concatenate([windows[:1, 0], windows[:, 1:][masks > 0]])
        np.testing.assert_array_equal(rebuilt, codes)
        assert np.all(windows[:, 1:][masks == 0] == 128)  # silence after the end
        np.testing.assert_array_equal(windows[1:, 0], windows[:-1, -1])  # consecutive windows share one sample
        row += num_windows
    assert mask_rows.sum() == sum(len(ex["speech"]) - 1 for ex in stored["test"])
    assert np.all(mask_rows[row:] == 0)  # rows that fill the last batch
    again = list(ds.make_eval_iterator())
    assert all(np.array_equal(a["audio"], b["audio"]) for a, b in zip(again, batches, strict=True))


@needs_espeak
@pytest.mark.parametrize("start", [1, 2, 5])
def test_restart_at_any_step_yields_the_same_batches(data_dir, start):
    ds = audio.load_audio_dataset(TINY, batch_size=2, segment_length=256, seed=3, data_dir=data_dir)
    from_zero = list(itertools.islice(ds.make_train_iterator(), start + 3))
    resumed = list(itertools.islice(ds.make_train_iterator(start), 3))
    for expected, got in zip(from_zero[start:], resumed, strict=True):
        np.testing.assert_array_equal(got["audio"], expected["audio"])
        np.testing.assert_array_equal(got["speaker"], expected["speaker"])


@needs_espeak
def test_seeds_change_the_windows_and_the_same_seed_repeats_them(data_dir):
    def first_batches(seed: int) -> list[np.ndarray]:
        ds = audio.load_audio_dataset(TINY, batch_size=2, segment_length=256, seed=seed, data_dir=data_dir)
        return [b["audio"] for b in itertools.islice(ds.make_train_iterator(), 4)]

    same, repeat, other = first_batches(0), first_batches(0), first_batches(1)
    assert all(np.array_equal(a, b) for a, b in zip(same, repeat, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(same, other, strict=True))


@needs_espeak
def test_sources_at_another_rate_are_resampled_to_16_khz(data_dir, stored, monkeypatch):
    # The tiny corpus declared as 8 kHz audio: the pipeline must double every utterance's length.
    spec = dataclasses.replace(audio.DATASETS[TINY], stored_sample_rate=8_000)
    monkeypatch.setitem(audio.DATASETS, "as_8khz", spec)
    ds = audio.load_audio_dataset("as_8khz", batch_size=4, segment_length=1000, data_dir=data_dir)
    targets = sum(b["mask"].sum() for b in ds.make_eval_iterator())
    assert targets == sum(2 * len(ex["speech"]) - 1 for ex in stored["test"])


@needs_espeak
def test_bad_sizes_are_rejected(data_dir):
    with pytest.raises(ValueError, match="batch_size 8 exceeds the 4 utterances"):
        audio.load_audio_dataset(TINY, batch_size=8, segment_length=16, data_dir=data_dir)
    with pytest.raises(ValueError, match="must be positive"):
        audio.load_audio_dataset(TINY, batch_size=2, segment_length=0, data_dir=data_dir)


# ---------------------------------------------------------------------------------------------------------------
# Errors that need no synthesiser


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(UnknownNameError) as error:
        audio.load_audio_dataset("timit", batch_size=2, segment_length=16)
    assert str(error.value) == (
        "unknown speech dataset 'timit'; valid choices: espeak_speech_local, espeak_speech_local/tiny, ljspeech, vctk"
    )


def test_missing_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as error:
        audio.load_audio_dataset(TINY, batch_size=2, segment_length=16, data_dir=str(tmp_path / "tfds"))
    message = str(error.value)
    assert "programs are not on PATH: espeak-ng, bible" in message
    assert "sudo apt-get install espeak-ng bible-kjv" in message and "make data" in message
    assert "'ljspeech'" in message


def test_standard_dataset_that_is_not_prepared_says_how_to_get_it(tmp_path, monkeypatch):
    def no_downloads(*args, **kwargs):
        raise AssertionError("the pipeline tried to download a dataset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_downloads)
    with pytest.raises(core.DatasetNotAvailableError) as error:
        audio.load_audio_dataset("ljspeech", batch_size=2, segment_length=16, data_dir=str(tmp_path))
    message = str(error.value)
    assert "'ljspeech' is not prepared" in message and str(tmp_path) in message
    assert "tfds build ljspeech" in message and "espeak_speech_local" in message
