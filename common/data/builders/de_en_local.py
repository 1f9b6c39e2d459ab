"""English-German sentence pairs from the Ding dictionary (Debian trans-de-en) as a tfds dataset: no download.

`sudo apt-get install trans-de-en` installs /usr/share/trans/de-en, UTF-8 lines `German :: English` whose
sub-entries, split by " | ", align position-wise. A sub-entry lists alternatives split by "; "; the first one is
the dictionary's main translation and the only one kept (the others of a sentence entry are rephrasings).

Normalisation (`normalise`): Unicode NFC; curly quotes and apostrophes to ASCII; annotations removed: `{n}`-style
grammar tags, `[ugs.]`/`[Am.]`-style usage labels and every `(...)` part (optional words such as "(that)" and
glosses such as "(vom Sternzeichen)"; the sentence reads well without them); whitespace collapsed.

A pair is kept when both sides are sentences (`is_sentence`: 4+ words, starting with an upper-case letter or a
digit, ending in . ! or ?) and neither holds a dictionary placeholder (sth., sb., etw., jdm., ...).
Exact duplicates (on the normalised pair) are dropped.

Split, fixed for a given trans-de-en: pairs that share an English or a German sentence form one group (connected
components), and a group goes whole to one split by a stable hash (SHA-256) of its first English sentence in
sorted order: 90% train, 5% validation, 5% test. So no English or German sentence is in two splits. The `tiny`
config keeps the groups whose second hash falls in the lowest 2% (a few hundred pairs), with the same splits.

Measured on trans-de-en 1.9-6 (dictionary of 2023-01-30): 18,393 pairs, 16,572 train / 957 validation / 864 test
(138k English and 132k German words in train); tiny: 297 / 20 / 10.
"""

import dataclasses
import functools
import hashlib
import os
import re
import unicodedata

import tensorflow_datasets as tfds

from common.data.core import DatasetNotAvailableError

DING_PATH = "/usr/share/trans/de-en"
SPLIT_PERCENT = {"train": 90, "validation": 5, "test": 5}  # of the groups of pairs, by hash
TINY_PER_MILLE = 20
MIN_WORDS = 4
# Dictionary placeholders ("somebody", "something"): an entry holding one is a pattern, not a sentence.
PLACEHOLDERS = frozenset(["sth.", "sb.", "sb's", "etw.", "jd.", "jdm.", "jdn.", "jds.", "o.ä."])

_TAGS = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"']?[A-ZÄÖÜ0-9])")


def check_source_present(path: str | None = None) -> None:
    """Raises DatasetNotAvailableError, saying how to install it, unless the Ding dictionary is at `path`
    (default DING_PATH)."""
    path = path or DING_PATH
    if not os.path.isfile(path):
        raise DatasetNotAvailableError(
            f"de_en_local reads the Ding English-German dictionary at {path}, which is not on this machine. "
            "Install it with `sudo apt-get install trans-de-en` (Debian/Ubuntu; `make data` does this when run as "
            "root). Or use the prepared tfds dataset 'wmt14_translate/de-en'."
        )


def normalise(text: str) -> str:
    """One line of text as stored: NFC, ASCII quotes, annotations removed, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    previous = None
    while previous != text:  # nested brackets: innermost first
        previous, text = text, _TAGS.sub(" ", text)
    text = " ".join(text.split())
    return re.sub(r" (?=[.,;:!?])", "", text)  # "Hand ." after a removed tag -> "Hand."


def is_sentence(text: str, min_words: int = MIN_WORDS) -> bool:
    """A normalised sentence: min_words+ words, upper-case letter or digit first, . ! or ? last."""
    return (
        len(text.split()) >= min_words
        and (text[:1].isupper() or text[:1].isdigit())
        and text[-1:] in ".!?"
        and not PLACEHOLDERS.intersection(text.split())
    )


def split_sentences(text: str) -> list[str]:
    """A paragraph of normalised text -> its sentences (cut after . ! ? before an upper-case letter or digit)."""
    return [part for part in _SENTENCE_END.split(text) if part]


def _may_be_sentence(entry: str) -> bool:
    return entry.count(" ") >= MIN_WORDS - 1 and any(mark in entry for mark in ".!?")


@functools.cache
def read_pairs(path: str | None = None) -> tuple[tuple[str, str], ...]:
    """The dictionary's normalised, de-duplicated (english, german) sentence pairs, in file order (read once per
    process: about 5 s)."""
    check_source_present(path)
    pairs, seen = [], set()
    with open(path or DING_PATH, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            for german_entry, english_entry in zip(german.split(" | "), english.split(" | "), strict=False):
                if not _may_be_sentence(english_entry) or not _may_be_sentence(german_entry):
                    continue  # cheap test first: most entries are words and phrases
                pair = (normalise(english_entry.split("; ")[0]), normalise(german_entry.split("; ")[0]))
                if pair not in seen and is_sentence(pair[0]) and is_sentence(pair[1]):
                    seen.add(pair)
                    pairs.append(pair)
    return tuple(pairs)


def stable_fraction(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by (text, salt) on every machine and Python run (unlike hash())."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _groups(pairs: tuple[tuple[str, str], ...]) -> list[list[int]]:
    """Indices of `pairs` grouped into connected components of shared English or German sentences."""
    parent = list(range(len(pairs)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with = {}
    for index, (english, german) in enumerate(pairs):
        for key in (("en", english), ("de", german)):
            other = first_with.setdefault(key, index)
            parent[root(index)] = root(other)
    groups: dict[int, list[int]] = {}
    for index in range(len(pairs)):
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())


def assign_splits(pairs: tuple[tuple[str, str], ...], per_mille: int = 1000) -> dict[str, list[tuple[str, str]]]:
    """split -> its pairs (file order), groups of pairs kept whole; per_mille < 1000 keeps that share of groups."""
    bounds, total = [], 0
    for split, percent in SPLIT_PERCENT.items():
        total += percent / 100
        bounds.append((total, split))
    split_of = {}
    for group in _groups(pairs):
        key = min(pairs[index][0] for index in group)
        if stable_fraction(key, "subset") * 1000 >= per_mille:
            continue
        fraction = stable_fraction(key, "split")
        split = next(name for bound, name in bounds if fraction < bound)
        split_of.update(dict.fromkeys(group, split))
    splits = {split: [] for split in SPLIT_PERCENT}
    for index, pair in enumerate(pairs):
        if index in split_of:
            splits[split_of[index]].append(pair)
    return splits


def held_out_sentences(path: str | None = None) -> dict[str, set[str]]:
    """language ("en", "de") -> casefolded sentences of the full validation and test splits, which the
    monolingual text leaves out."""
    splits = assign_splits(read_pairs(path))
    held_out = {"en": set(), "de": set()}
    for split in ("validation", "test"):
        for english, german in splits[split]:
            held_out["en"].add(english.casefold())
            held_out["de"].add(german.casefold())
    return held_out


@dataclasses.dataclass(eq=False)  # as tfds.core.BuilderConfig
class DeEnConfig(tfds.core.BuilderConfig):
    """The share of the groups of pairs kept, in thousandths (1000: all)."""

    per_mille: int = 1000


class DeEnLocal(tfds.core.GeneratorBasedBuilder):
    """English-German sentence pairs of the Ding dictionary; normalised, de-duplicated, split 90/5/5 by hash."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        DeEnConfig(name="default", description="every sentence pair of the dictionary"),
        DeEnConfig(name="tiny", description="2% of the pair groups, for tests", per_mille=TINY_PER_MILLE),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"en": tfds.features.Text(), "de": tfds.features.Text()}),
            supervised_keys=("en", "de"),
            homepage="https://dict.tu-chemnitz.de/",
        )

    def _split_generators(self, dl_manager):
        splits = assign_splits(read_pairs(), self.builder_config.per_mille)
        return {split: self._generate_examples(pairs) for split, pairs in splits.items()}

    def _generate_examples(self, pairs: list[tuple[str, str]]):
        """Keys: the pair's position in its split in file order (tfds stores the split in its own fixed order)."""
        for index, (english, german) in enumerate(pairs):
            yield index, {"en": english, "de": german}
