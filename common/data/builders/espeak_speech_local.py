"""Synthetic English speech as a tfds dataset: Debian's espeak-ng reads King James Bible verses (no download).

`sudo apt-get install espeak-ng bible-kjv` installs the synthesiser and the `bible` program, whose data package
(bible-kjv-text) holds the text. The verses are spoken by a few espeak-ng voices, so a model can be conditioned
on the speaker; espeak-ng's 22,050 Hz output is resampled to 16 kHz mono int16.

Selection, fixed for a given bible-kjv-text: the verses of MIN_CHARS to MAX_CHARS characters in canonical order,
num_utterances of them taken evenly spaced from Genesis to Revelation. Utterance i is spoken by voice
VOICES[i % len(VOICES)]; the utterances come in groups of len(VOICES) consecutive ones (one per voice), and group g
is a test group when g % test_every == test_every - 1, so both splits hold every voice equally.
"""

import dataclasses
import math
import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np
import tensorflow_datasets as tfds

from common.data.core import DatasetNotAvailableError

SAMPLE_RATE = 16_000
ESPEAK_SAMPLE_RATE = 22_050
# Two accents x two voice variants (espeak-ng voice + "+variant"): a male and a female US voice, a male and a
# female British (received pronunciation) voice.
VOICES = ["en-us", "en-us+f3", "en-gb-x-rp", "en-gb-x-rp+f4"]
MIN_CHARS = 40  # about 2.5 s of speech at espeak-ng's default 175 words per minute
MAX_CHARS = 100  # about 6 s
REQUIRED_PROGRAMS = {"espeak-ng": "espeak-ng", "bible": "bible-kjv"}  # program -> Debian package


def check_programs_present() -> None:
    """Raises DatasetNotAvailableError, saying how to install them, unless espeak-ng and bible are on PATH."""
    missing = [program for program in REQUIRED_PROGRAMS if shutil.which(program) is None]
    if missing:
        packages = " ".join(REQUIRED_PROGRAMS.values())
        raise DatasetNotAvailableError(
            f"espeak_speech_local synthesises speech with Debian programs, and these programs are not on PATH: "
            f"{', '.join(missing)}. "
            f"Install them with `sudo apt-get install {packages}` (Debian/Ubuntu; `make data` does this when run "
            "as root). Or use a prepared tfds speech dataset: 'ljspeech' or 'vctk'."
        )


def read_verses() -> list[tuple[str, str]]:
    """Every verse of the King James Bible as (reference like "Ge1:1", text), in canonical order."""
    listing = subprocess.run(
        ["bible", "-f", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True
    ).stdout
    verses = []
    for line in listing.splitlines():
        reference, _, text = line.strip().partition(" ")
        if text:
            verses.append((reference, text))
    return verses


def select_verses(verses: list[tuple[str, str]], num_utterances: int) -> list[tuple[str, str]]:
    """num_utterances verses of MIN_CHARS..MAX_CHARS characters, evenly spaced through `verses` (in order)."""
    candidates = [verse for verse in verses if MIN_CHARS <= len(verse[1]) <= MAX_CHARS]
    if num_utterances > len(candidates):
        raise ValueError(f"num_utterances={num_utterances} exceeds the {len(candidates)} verses of usable length")
    picks = np.linspace(0, len(candidates) - 1, num_utterances).round().astype(int)
    return [candidates[i] for i in picks]


def resample_int16(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """int16 [N] at from_rate -> int16 [~N * to_rate / from_rate], polyphase low-pass resampling, clipped."""
    from scipy.signal import resample_poly

    if from_rate == to_rate:
        return samples.astype(np.int16)
    divisor = math.gcd(from_rate, to_rate)
    resampled = resample_poly(samples.astype(np.float32), to_rate // divisor, from_rate // divisor)
    return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)


def synthesise(text: str, voice: str, scratch_dir: str) -> np.ndarray:
    """int16 [N] mono speech at SAMPLE_RATE of espeak-ng reading `text` in `voice`."""
    path = os.path.join(scratch_dir, "utterance.wav")
    # The text goes through stdin, so nothing in it can be read as an option.
    subprocess.run(["espeak-ng", "-v", voice, "-w", path], input=text, text=True, check=True, capture_output=True)
    with wave.open(path, "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, ESPEAK_SAMPLE_RATE):
            raise ValueError(
                f"espeak-ng wrote {wav.getnchannels()} channel(s), {8 * wav.getsampwidth()}-bit, "
                f"{wav.getframerate()} Hz; expected mono 16-bit {ESPEAK_SAMPLE_RATE} Hz"
            )
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    return resample_int16(samples, ESPEAK_SAMPLE_RATE, SAMPLE_RATE)


def split_of(index: int, test_every: int) -> str:
    """ "train" or "test" for utterance `index` (see the module docstring)."""
    group = index // len(VOICES)
    return "test" if group % test_every == test_every - 1 else "train"


@dataclasses.dataclass(eq=False)  # as tfds.core.BuilderConfig
class EspeakSpeechConfig(tfds.core.BuilderConfig):
    """How many utterances to synthesise, and one test group of len(VOICES) utterances every test_every groups."""

    num_utterances: int = 1000
    test_every: int = 10


class EspeakSpeechLocal(tfds.core.GeneratorBasedBuilder):
    """King James Bible verses read by espeak-ng in four English voices; 16 kHz mono int16 with text and voice."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        EspeakSpeechConfig(name="default", description="1,000 utterances (about 75 minutes of speech)"),
        EspeakSpeechConfig(
            name="tiny", description="8 utterances, 4 train / 4 test, for tests", num_utterances=8, test_every=2
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    # SAMPLE_RATE samples, stored as raw bytes: tfds.features.Audio keeps int16 as int64 varints,
                    # which take up to 10 bytes per sample.
                    "speech": tfds.features.Tensor(
                        shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES
                    ),
                    "text": tfds.features.Text(),
                    "speaker": tfds.features.ClassLabel(names=VOICES),
                    "id": tfds.features.Text(),  # the verse reference, e.g. "Ge1:1"
                }
            ),
            supervised_keys=("speech", "text"),
            homepage="https://github.com/espeak-ng/espeak-ng",
        )

    def _split_generators(self, dl_manager):
        check_programs_present()
        verses = select_verses(read_verses(), self.builder_config.num_utterances)
        return {split: self._generate_examples(verses, split) for split in ("train", "test")}

    def _generate_examples(self, verses: list[tuple[str, str]], split: str):
        """Synthesises the utterances of `split`; keys are their indices in the selection."""
        with tempfile.TemporaryDirectory() as scratch_dir:
            for index, (reference, text) in enumerate(verses):
                if split_of(index, self.builder_config.test_every) != split:
                    continue
                voice = index % len(VOICES)
                speech = synthesise(text, VOICES[voice], scratch_dir)
                yield index, {"speech": speech, "text": text, "speaker": voice, "id": reference}
