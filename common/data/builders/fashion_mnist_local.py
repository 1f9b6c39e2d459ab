"""The real Fashion-MNIST as a tfds dataset, built from Debian's `dataset-fashion-mnist` IDX files (no download).

`sudo apt-get install dataset-fashion-mnist` puts the four gzipped IDX files in /usr/share/datasets/fashion-mnist;
REPRISE_FASHION_MNIST_DIR points the builder at another folder holding the same four files.
"""

import gzip
import os
import struct

import numpy as np
import tensorflow_datasets as tfds

from common.data.core import DatasetNotAvailableError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
DIR_ENV = "REPRISE_FASHION_MNIST_DIR"
CLASS_NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
IMAGE_SIDE = 28
# split -> (images file, labels file)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# IDX magic numbers: two zero bytes, 0x08 (unsigned byte elements), then the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


class IdxFormatError(ValueError):
    """A file that should be a gzipped IDX file (the MNIST format) is not one, or has an unexpected layout."""


def source_dir() -> str:
    """Where the IDX files are read from: $REPRISE_FASHION_MNIST_DIR, else Debian's install location."""
    return os.environ.get(DIR_ENV) or DEFAULT_DIR


def check_files_present() -> None:
    """Raises DatasetNotAvailableError, saying how to install the files, unless all four are in source_dir()."""
    directory = source_dir()
    wanted = [name for pair in SPLIT_FILES.values() for name in pair]
    missing = [name for name in wanted if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise DatasetNotAvailableError(
            f"fashion_mnist_local needs the Fashion-MNIST IDX files, and {directory} lacks {', '.join(missing)}. "
            "Install them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; `make setup` does this "
            f"when run as root); the Debian package installs them into {DEFAULT_DIR}. Or set {DIR_ENV} to a folder "
            "holding the four .gz files. Without them, use the dataset 'digits_local'."
        )


def read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Reads a gzipped IDX file into a uint8 array of the shape its header states.

    The header is a big-endian uint32 magic number (0x0000 0x08 ndim) followed by ndim uint32 sizes.
    """
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise IdxFormatError(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise IdxFormatError(
            f"{path} has IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}; "
            "is it a Fashion-MNIST file, and not truncated or swapped with another?"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    array = np.frombuffer(data, np.uint8, offset=header_size)
    if array.size != int(np.prod(shape)):
        raise IdxFormatError(f"{path}: header says shape {shape}, but the file holds {array.size} values")
    return array.reshape(shape)


def read_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) of `split` ("train" or "test"), in file order."""
    images_file, labels_file = SPLIT_FILES[split]
    directory = source_dir()
    images = read_idx(os.path.join(directory, images_file), IMAGES_MAGIC)
    labels = read_idx(os.path.join(directory, labels_file), LABELS_MAGIC)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise IdxFormatError(f"{images_file} holds images of shape {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise IdxFormatError(f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise IdxFormatError(f"{labels_file} holds label {labels.max()}; Fashion-MNIST has 10 classes")
    return images, labels


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 grey images of 10 clothing classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIDE, IMAGE_SIDE, 1)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        check_files_present()
        return {split: self._generate_examples(split) for split in SPLIT_FILES}

    def _generate_examples(self, split: str):
        images, labels = read_split(split)
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": image[:, :, None], "label": int(label)}
