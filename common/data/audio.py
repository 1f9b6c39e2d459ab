"""The speech pipeline of autoregressive audio models (WaveNet): 8-bit mu-law codes of 16 kHz mono audio.

`load_audio_dataset(name, ...)` returns an `AudioDataset`: iterators of numpy batches of mu-law codes plus the
metadata a model needs (sample rate, number of classes and speakers, example counts). Sources are tfds datasets:
the offline builder common/data/builders/espeak_speech_local, or the standard tfds `ljspeech` and `vctk` for users
who have them prepared; every source is resampled to 16 kHz.

Training batches are windows of segment_length + 1 samples (inputs audio[:, :-1], targets audio[:, 1:]), one
window per utterance per epoch, at a random offset. Utterances shorter than a window are zero-padded at the end
(silence, the mu-law code of 0.0), so every utterance takes part in every epoch and an epoch is a fixed number of
batches. The stream is common/data/core.py's: epoch e is the train split shuffled with a seed derived from (seed, e) and
cut to whole batches, and each window's offset is drawn by a stateless op seeded by (seed, e, position in the
epoch), so batch s depends only on (seed, s) and `make_train_iterator(s)` yields exactly what
`make_train_iterator(0)` yields from batch s on. In a multi-host job each process reads its own part of every split.
"""

import dataclasses
import functools
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from common.data import core
from common.data.builders import espeak_speech_local
from common.registry import lookup

Batch = core.Batch

SAMPLE_RATE = 16_000
MU = 255  # 8-bit mu-law: 256 classes
SILENCE = 0  # the int16 sample that pads short utterances
INT16_SCALE = 32768.0  # int16 sample -> float in [-1, 1)

# ---------------------------------------------------------------------------------------------------------------
# mu-law companding (ITU-T G.711 curve, quantised as in WaveNet). Pure array functions: numpy in, numpy out;
# jax in (also traced under jit), jax out.


def _array_module(array):
    return jnp if isinstance(array, jax.Array) else np


def mu_law_encode(audio, mu: int = MU):
    """audio: float [...] in [-1, 1] (clipped) -> int32 [...] codes in [0, mu]; -1 -> 0, 0.0 -> 128, 1 -> 255."""
    xp = _array_module(audio)
    audio = xp.clip(xp.asarray(audio, dtype=xp.float32), -1.0, 1.0)
    companded = xp.sign(audio) * xp.log1p(mu * xp.abs(audio)) / np.log1p(mu)
    return xp.floor((companded + 1.0) / 2.0 * mu + 0.5).astype(xp.int32)


def mu_law_decode(codes, mu: int = MU):
    """codes: int [...] in [0, mu] -> float32 [...] in [-1, 1], the inverse of mu_law_encode up to quantisation."""
    xp = _array_module(codes)
    companded = 2.0 * xp.asarray(codes, dtype=xp.float32) / mu - 1.0
    return (xp.sign(companded) * xp.expm1(xp.abs(companded) * np.log1p(mu)) / mu).astype(xp.float32)


# ---------------------------------------------------------------------------------------------------------------
# Sources.


@dataclasses.dataclass(frozen=True)
class SpeechSpec:
    """Static facts about a speech dataset, known without reading it."""

    tfds_name: str  # "name" or "name/config"
    stored_sample_rate: int  # resampled to SAMPLE_RATE when it differs
    speaker_key: str | None  # a ClassLabel feature; None: one speaker
    train_split: str
    eval_split: str
    check_available: Callable[[], None] | None = None  # offline builders only: raises when the source is missing

    @property
    def is_offline(self) -> bool:
        return self.check_available is not None


def _espeak_spec(tfds_name: str) -> SpeechSpec:
    return SpeechSpec(
        tfds_name,
        espeak_speech_local.SAMPLE_RATE,
        "speaker",
        "train",
        "test",
        check_available=espeak_speech_local.check_programs_present,
    )


DATASETS: dict[str, SpeechSpec] = {
    "espeak_speech_local": _espeak_spec("espeak_speech_local"),
    # 8 utterances (4 train / 4 test) that build in seconds: for tests and smoke configs.
    "espeak_speech_local/tiny": _espeak_spec("espeak_speech_local/tiny"),
    # tfds ships both as one "train" split; the last 5% of it is held out.
    "ljspeech": SpeechSpec("ljspeech", 22_050, None, "train[:95%]", "train[95%:]"),
    "vctk": SpeechSpec("vctk", 48_000, "speaker", "train[:95%]", "train[95%:]"),
}


def get_speech_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder for `name`: offline builders are prepared on first use (once, even when several
    processes ask at the same time); nothing downloads."""
    spec = lookup(DATASETS, name, "speech dataset")
    if spec.is_offline:
        return core.prepare_offline(lambda: tfds.builder(spec.tfds_name, data_dir=data_dir), spec.check_available)
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise core.not_prepared_error(name, spec.tfds_name, builder, [n for n, s in DATASETS.items() if s.is_offline])
    return builder


# ---------------------------------------------------------------------------------------------------------------
# The pipeline.


@dataclasses.dataclass(frozen=True)
class AudioDataset:
    """What every audio paper gets back, whatever the source.

    make_train_iterator(start_step=0) yields, forever from batch `start_step` on,
      {"audio": int32 [batch_size, segment_length + 1] mu-law codes, "speaker": int32 [batch_size]}.
    make_eval_iterator() yields one pass over the eval split, every utterance cut into consecutive windows that
    overlap by one sample (so the targets audio[:, 1:] tile it), in a fixed order, with the same keys plus
      "mask": float32 [batch_size, segment_length], 1 where the target is a real sample, 0 for padding
    (the silence after an utterance's end, and whole rows that fill the last batch).
    In a job of several processes each yields batch_size // process_count rows of every batch, and as many eval
    batches as the others (all-padding ones where its part of the eval split runs out first).
    """

    name: str
    sample_rate: int
    num_classes: int
    num_speakers: int
    num_train_examples: int  # utterances
    num_eval_examples: int
    batch_size: int
    segment_length: int
    make_train_iterator: Callable[..., Iterator[Batch]]
    make_eval_iterator: Callable[[], Iterator[Batch]]

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (one window per utterance); the utterances left after the last whole batch sit out."""
        return self.num_train_examples // self.batch_size


def to_codes(batch: Batch) -> Batch:
    """Replaces batch["audio"] (int16 [B, T] samples) by its int32 [B, T] mu-law codes."""
    return dict(batch, audio=mu_law_encode(batch["audio"] / INT16_SCALE))


def load_audio_dataset(
    name: str,
    *,
    batch_size: int,
    segment_length: int,
    seed: int = 0,
    data_dir: str | None = None,
    shuffle_buffer: int | None = None,
    cache: bool = True,
    shard: core.ProcessShard | None = None,
) -> AudioDataset:
    """Builds the train and eval pipelines of speech dataset `name` (one of DATASETS).

    segment_length: target samples per window; each window holds segment_length + 1 samples.
    data_dir: tfds data dir (default ~/tensorflow_datasets); offline datasets are prepared there on first use.
    shuffle_buffer: utterances held by the per-epoch shuffle; None shuffles the whole train split.
    cache: keep the decoded, resampled splits in memory after their first pass (turn off for corpora larger than
      memory: ljspeech is about 2.8 GB at 16 kHz int16).
    shard: the part of the data this process reads; None: this JAX process's (all of it for a single process).
      batch_size is global: each process yields its 1 / process_count of every batch.
    """
    spec = lookup(DATASETS, name, "speech dataset")
    if batch_size <= 0 or segment_length <= 0:
        raise ValueError(f"batch_size and segment_length must be positive, got {batch_size} and {segment_length}")
    core.check_seed(seed)

    core.hide_accelerators_from_tensorflow()
    builder = get_speech_builder(name, data_dir)
    num_train = builder.info.splits[spec.train_split].num_examples
    num_eval = builder.info.splits[spec.eval_split].num_examples
    num_speakers = builder.info.features[spec.speaker_key].num_classes if spec.speaker_key else 1
    steps_per_epoch = num_train // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_train} utterances of {name}'s train split")
    shard = shard or core.ProcessShard.of_this_process()
    local_batch_size = shard.local_batch_size(batch_size)
    window = segment_length + 1
    resample = functools.partial(
        espeak_speech_local.resample_int16, from_rate=spec.stored_sample_rate, to_rate=SAMPLE_RATE
    )

    def utterance(example):
        """(samples int16 [N] at SAMPLE_RATE, speaker int32 [])."""
        samples = tf.reshape(example["speech"], [-1])
        if spec.stored_sample_rate != SAMPLE_RATE:
            samples = tf.ensure_shape(tf.numpy_function(resample, [samples], tf.int16, stateful=False), [None])
        speaker = tf.cast(example[spec.speaker_key], tf.int32) if spec.speaker_key else tf.constant(0, tf.int32)
        return samples, speaker

    train_utterances = core.read_split(builder, shard.split(spec.train_split), utterance, cache=cache)
    eval_utterances = core.read_split(builder, shard.split(spec.eval_split), utterance, cache=cache)

    def pad_to_window(samples: tf.Tensor) -> tf.Tensor:
        """int16 [n <= window] -> int16 [window], silence after the end."""
        return tf.ensure_shape(tf.pad(samples, [[0, window - tf.shape(samples)[0]]], constant_values=SILENCE), [window])

    def random_window(example, example_seed):
        """One window at an offset drawn uniformly from the utterance's valid offsets, seeded by example_seed."""
        samples, speaker = example
        last_start = tf.maximum(tf.shape(samples, out_type=tf.int64)[0] - window, 0)
        start = tf.random.stateless_uniform([], seed=example_seed, minval=0, maxval=last_start + 1, dtype=tf.int64)
        return {"audio": pad_to_window(samples[start : start + window]), "speaker": speaker}

    def make_train_iterator(start_step: int = 0) -> Iterator[Batch]:
        batches = core.train_batches(
            train_utterances,
            random_window,
            seed=seed,
            global_batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            start_step=start_step,
            shuffle_buffer=shuffle_buffer or num_train,
            shard=shard,
        )
        return map(to_codes, batches.as_numpy_iterator())

    def tiled_windows(samples, speaker):
        """All windows of one utterance: starts 0, L, 2L, ... until every sample after the first is a target."""
        length = tf.shape(samples)[0]
        num_windows = tf.maximum(length - 2 + segment_length, 0) // segment_length  # ceil((length - 1) / L)
        padded = tf.pad(samples, [[0, num_windows * segment_length + 1 - length]], constant_values=SILENCE)
        target_index = tf.range(num_windows)[:, None] * segment_length + 1 + tf.range(segment_length)[None, :]
        return tf.data.Dataset.from_tensor_slices(
            {
                "audio": tf.signal.frame(padded, window, segment_length),
                "speaker": tf.fill([num_windows], speaker),
                "mask": tf.cast(target_index < length, tf.float32),
            }
        )

    eval_windows = eval_utterances.flat_map(tiled_windows)

    @functools.cache
    def eval_batches() -> tf.data.Dataset:
        """The windows per utterance vary, so processes count their batches (one pass) and all yield the most."""
        if shard.count == 1:
            return core.eval_batches(eval_windows, local_batch_size)
        num_batches = core.max_over_processes(core.count_batches(core.eval_batches(eval_windows, local_batch_size)))
        return core.eval_batches(eval_windows, local_batch_size, num_batches)

    def make_eval_iterator() -> Iterator[Batch]:
        return map(to_codes, eval_batches().as_numpy_iterator())

    return AudioDataset(
        name=name,
        sample_rate=SAMPLE_RATE,
        num_classes=MU + 1,
        num_speakers=num_speakers,
        num_train_examples=num_train,
        num_eval_examples=num_eval,
        batch_size=batch_size,
        segment_length=segment_length,
        make_train_iterator=make_train_iterator,
        make_eval_iterator=make_eval_iterator,
    )
