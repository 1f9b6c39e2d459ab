"""The real Fashion-MNIST as a tfds dataset, built from Debian's `dataset-fashion-mnist` IDX files (no download)."""

import gzip
import os
import struct

import numpy as np
import tensorflow_datasets as tfds

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
DIR_ENV = "REPRISE_FASHION_MNIST_DIR"
CLASS_NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetNotAvailableError(FileNotFoundError):
    """The data a dataset needs is not on this machine; the message says how to get it."""


def source_dir() -> str:
    return os.environ.get(DIR_ENV, DEFAULT_DIR)


def check_files_present() -> None:
    directory = source_dir()
    missing = [name for pair in _FILES.values() for name in pair if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise DatasetNotAvailableError(
            f"fashion_mnist_local needs the Fashion-MNIST IDX files, and {directory} lacks {', '.join(missing)}. "
            "Install them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; `make setup` does this "
            f"as root), which puts them in {DEFAULT_DIR}, or set {DIR_ENV} to a folder holding the four .gz files. "
            "Without them, use dataset 'digits_local'."
        )


def read_idx(path: str) -> np.ndarray:
    """Reads a gzipped IDX file (the MNIST file format) into a uint8 array of its stated shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {array.size} bytes")
    return array.reshape(shape)


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 grey images of 10 clothing classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        check_files_present()
        return {split: self._generate_examples(*files) for split, files in _FILES.items()}

    def _generate_examples(self, images_file: str, labels_file: str):
        images = read_idx(os.path.join(source_dir(), images_file))
        labels = read_idx(os.path.join(source_dir(), labels_file))
        if len(images) != len(labels):
            raise ValueError(f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels")
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": image[:, :, None], "label": int(label)}
