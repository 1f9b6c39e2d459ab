"""Offline tfds builders over real data that packages ship (see docs/data.md).

Importing this package registers them with tfds, so `tfds.builder("fashion_mnist_local")` works too.
"""

from common.data.builders.de_en_local import DeEnLocal
from common.data.builders.digits_local import DigitsLocal
from common.data.builders.espeak_speech_local import EspeakSpeechLocal
from common.data.builders.fashion_mnist_local import FashionMnistLocal
from common.data.builders.text_local import TextLocal

__all__ = ["DeEnLocal", "DigitsLocal", "EspeakSpeechLocal", "FashionMnistLocal", "TextLocal"]
