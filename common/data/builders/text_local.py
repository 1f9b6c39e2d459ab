"""Monolingual English and German sentences from Debian packages, for language models: a tfds dataset, no download.

Sources (`sudo apt-get install bible-kjv fortunes-de manpages-de`; the gettext catalogues come with the system):
  en: the King James Bible's verses (the `bible` program of bible-kjv, data in bible-kjv-text) and the English
      messages (msgids) of the German gettext catalogues /usr/share/locale/de/LC_MESSAGES/*.mo, which add modern,
      technical English to the bible's.
  de: the German fortunes (fortunes-de), the text of the German manual pages (manpages-de: roff reduced to its
      running text) and the German messages (msgstrs) of the same catalogues.
Each source is cut into sentences, normalised like the parallel pairs (common/data/builders/de_en_local) and kept
when it is a sentence (4+ words, upper-case first, . ! ? last), has no markup or format characters and at most
MAX_CHARS characters. Duplicates (casefolded) and every sentence of the parallel validation and test splits of
de_en_local are left out, so a language model never sees an evaluation sentence.

Splits, fixed for given packages: a sentence is in "validation" when a stable hash of it falls in the lowest 2%,
else in "train". The tiny configs read only the first TINY_PARAGRAPHS paragraphs (verses, cookies, messages, ...)
of every source.
Measured sizes (bible-kjv-text 4.38, fortunes-de 0.35, manpages-de 4.18.1, the catalogues of a Debian bookworm
system): en 30,903 train / 625 validation sentences, 678k words (27,985 bible sentences, 3,890 gettext messages
before de-duplication); de 54,608 / 1,191 sentences, 733k words (23,502 fortune, 45,026 manual-page and 4,755
gettext sentences before de-duplication). The tiny configs: en 1,131 / 30, de 2,171 / 50.
"""

import dataclasses
import glob
import gzip
import itertools
import os
import re
import shutil
from collections.abc import Iterator

import tensorflow_datasets as tfds

from common.data.builders import de_en_local, espeak_speech_local
from common.data.core import DatasetNotAvailableError

FORTUNES_DIR = "/usr/share/games/fortunes/de"
MANPAGES_DIR = "/usr/share/man/de"
GETTEXT_GLOB = "/usr/share/locale/de/LC_MESSAGES/*.mo"
VALIDATION_PER_MILLE = 20
TINY_PARAGRAPHS = 1000  # per source: the tiny configs build in seconds
_TINY = f"the first {TINY_PARAGRAPHS} paragraphs of every source, for tests"
MAX_CHARS = 300
LANGUAGES = ("en", "de")


_MARKUP = re.compile(r"[%\\<>{}_@|#*=~^`\[\]]|--|\s-\w|/\w+/")


def _check_bible() -> None:
    if shutil.which("bible") is None:
        raise DatasetNotAvailableError(
            "text_local/en reads the King James Bible through the `bible` program, which is not on PATH. "
            "Install it with `sudo apt-get install bible-kjv` (Debian/Ubuntu; `make data` does this when run as "
            "root). Or use the prepared tfds dataset 'wmt14_translate/de-en'."
        )


def _check_directory(path: str, package: str) -> None:
    if not os.path.isdir(path):
        raise DatasetNotAvailableError(
            f"text_local/de reads {path}, which is not on this machine. Install it with "
            f"`sudo apt-get install {package}` (Debian/Ubuntu; `make data` does this when run as root). "
            "Or use the prepared tfds dataset 'wmt14_translate/de-en'."
        )


def check_sources_present(language: str) -> None:
    """Raises DatasetNotAvailableError, saying what to install, unless every source of `language` is here."""
    de_en_local.check_source_present()  # the held-out sentences come from the parallel pairs
    if language == "en":
        _check_bible()
    else:
        _check_directory(FORTUNES_DIR, "fortunes-de")
        _check_directory(MANPAGES_DIR, "manpages-de")


def keep(sentence: str) -> bool:
    """A normalised sentence fit for a language model: a sentence, no markup, at most MAX_CHARS characters."""
    return len(sentence) <= MAX_CHARS and de_en_local.is_sentence(sentence) and not _MARKUP.search(sentence)


def sentences_of(paragraph: str) -> Iterator[str]:
    """The kept sentences of a paragraph of raw text."""
    for sentence in de_en_local.split_sentences(de_en_local.normalise(paragraph)):
        if keep(sentence):
            yield sentence


# ---------------------------------------------------------------------------------------------------------------
# Sources: each yields paragraphs of raw text.


def bible_paragraphs() -> Iterator[str]:
    """The verses of the King James Bible, in canonical order."""
    for _, text in espeak_speech_local.read_verses():
        yield text


def gettext_messages(side: str) -> Iterator[str]:
    """side "msgid": the English messages of the German catalogues; "msgstr": their German translations.
    Catalogues that Python's gettext cannot read (a header not in UTF-8) are skipped."""
    import gettext

    for path in sorted(glob.glob(GETTEXT_GLOB)):
        try:
            with open(path, "rb") as catalogue_file:
                catalogue = gettext.GNUTranslations(catalogue_file)._catalog
        except (UnicodeDecodeError, OSError):
            continue
        for message_id, message in catalogue.items():
            if isinstance(message_id, str) and message_id and message:  # plural forms are keyed by tuples
                yield (message_id.split("\x04")[-1] if side == "msgid" else message).replace("\n", " ")


def fortune_paragraphs() -> Iterator[str]:
    """The German fortunes (cookies between "%" lines), attributions ("-- Name") dropped."""
    for path in sorted(glob.glob(os.path.join(FORTUNES_DIR, "*"))):
        if os.path.splitext(path)[1] in (".dat", ".u8") or os.path.basename(path) == "asciiart":
            continue
        with open(path, encoding="utf-8", errors="replace") as cookies:
            for cookie in cookies.read().split("\n%\n"):
                lines = [line for line in cookie.splitlines() if not line.strip().startswith("--")]
                yield " ".join(lines)


_ROFF_ESCAPES = [
    (re.compile(r'\\".*'), ""),  # comment
    (re.compile(r"\\f(\(..|\[[^\]]*\]|.)"), ""),  # font changes
    (re.compile(r"\\s[+-]?\d"), ""),  # size changes
    (re.compile(r"\\\((lq|rq|Lq|Rq)"), '"'),
    (re.compile(r"\\\((aq|oq|cq)"), "'"),
    (re.compile(r"\\\((em|en|mi|hy)|\\-"), "-"),
    (re.compile(r"\\\[(u00(..)|[^\]]*)\]|\\\(..|\\\*(\(..|\[[^\]]*\]|.)"), "\\\\"),  # other specials: rejected
    (re.compile(r"\\[&%:,/|^)]"), ""),  # zero-width
    (re.compile(r"\\ "), " "),
]
_FONT_MACROS = {".B", ".I", ".BR", ".RB", ".BI", ".IB", ".IR", ".RI", ".SM", ".SB"}


def roff_paragraphs(roff: str) -> Iterator[str]:
    """The running text of a man page: text lines joined into paragraphs; font macros keep their words, every
    other request or macro ends a paragraph. Special characters that are not quotes or dashes are left as a
    backslash, so sentences holding them are dropped by `keep`."""
    paragraph = []
    for line in roff.splitlines():
        for pattern, replacement in _ROFF_ESCAPES:
            line = pattern.sub(replacement, line)
        if line.startswith((".", "'")):
            macro, _, arguments = line.partition(" ")
            if macro in _FONT_MACROS:
                paragraph.append(arguments.replace('"', ""))
                continue
            if paragraph:
                yield " ".join(paragraph)
            paragraph = []
        elif line.strip():
            paragraph.append(line)
    if paragraph:
        yield " ".join(paragraph)


def manpage_paragraphs() -> Iterator[str]:
    """The running text of every German manual page (gzipped roff), in path order."""
    for path in sorted(glob.glob(os.path.join(MANPAGES_DIR, "**", "*.gz"), recursive=True)):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as page:
            yield from roff_paragraphs(page.read())


def sources(language: str) -> dict[str, Iterator[str]]:
    """source name -> its paragraphs of raw text, for `language` ("en" or "de"), in a fixed order."""
    if language == "en":
        return {"bible": bible_paragraphs(), "gettext": gettext_messages("msgid")}
    return {"fortunes": fortune_paragraphs(), "manpages": manpage_paragraphs(), "gettext": gettext_messages("msgstr")}


def read_sentences(language: str, paragraphs_per_source: int | None = None) -> dict[str, list[str]]:
    """split ("train", "validation") -> the kept, de-duplicated sentences of `language` in source order, without
    the parallel evaluation sentences; paragraphs_per_source: read only the first ones of every source."""
    check_sources_present(language)
    held_out = de_en_local.held_out_sentences()[language]
    splits, seen = {"train": [], "validation": []}, set()
    for paragraphs in sources(language).values():
        for paragraph in itertools.islice(paragraphs, paragraphs_per_source):
            for sentence in sentences_of(paragraph):
                key = sentence.casefold()
                if key in seen or key in held_out:
                    continue
                seen.add(key)
                in_validation = de_en_local.stable_fraction(key, "split") * 1000 < VALIDATION_PER_MILLE
                splits["validation" if in_validation else "train"].append(sentence)
    return splits


@dataclasses.dataclass(eq=False)  # as tfds.core.BuilderConfig
class TextConfig(tfds.core.BuilderConfig):
    """The language, and how many paragraphs of each source to read (None: all)."""

    language: str = "en"
    paragraphs_per_source: int | None = None


class TextLocal(tfds.core.GeneratorBasedBuilder):
    """English and German sentences from Debian packages (bible, gettext messages, fortunes, manual pages)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        TextConfig(name="en", description="King James Bible verses and gettext msgids", language="en"),
        TextConfig(name="de", description="fortunes-de, manpages-de and gettext msgstrs", language="de"),
        TextConfig(name="en_tiny", description=_TINY, language="en", paragraphs_per_source=TINY_PARAGRAPHS),
        TextConfig(name="de_tiny", description=_TINY, language="de", paragraphs_per_source=TINY_PARAGRAPHS),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="https://packages.debian.org/",
        )

    def _split_generators(self, dl_manager):
        splits = read_sentences(self.builder_config.language, self.builder_config.paragraphs_per_source)
        return {split: self._generate_examples(sentences) for split, sentences in splits.items()}

    def _generate_examples(self, sentences: list[str]):
        """Keys: the sentence's position in its split in source order (tfds stores it in its own fixed order)."""
        for index, sentence in enumerate(sentences):
            yield index, {"text": sentence}
