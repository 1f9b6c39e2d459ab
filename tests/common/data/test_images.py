"""The image pipeline over real offline data: counts, contents, shapes, exact resume, seeds and error messages."""

import gzip
import hashlib
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from common.data import core, images
from common.data.builders import digits_local, fashion_mnist_local
from common.registry import UnknownNameError
from tests.helpers import REPO, subprocess_env

HAVE_FASHION_MNIST = all(
    os.path.isfile(os.path.join(fashion_mnist_local.source_dir(), name))
    for pair in fashion_mnist_local.SPLIT_FILES.values()
    for name in pair
)
needs_fashion_mnist = pytest.mark.skipif(
    not HAVE_FASHION_MNIST,
    reason=f"Fashion-MNIST IDX files absent from {fashion_mnist_local.source_dir()}: "
    "`sudo apt-get install dataset-fashion-mnist` (or `make setup`) installs them",
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """One tfds data dir for the whole session, so each offline builder is prepared once."""
    return str(tmp_path_factory.mktemp("tfds"))


def raw_pixels(batches: list[dict], name: str) -> np.ndarray:
    """Undoes the normalisation of the real examples in `batches`: uint8 [N, H, W, C]."""
    spec = images.DATASETS[name]
    pixels = np.concatenate([b["image"][b["mask"] > 0] if "mask" in b else b["image"] for b in batches])
    restored = np.round(pixels * np.float32(255 * spec.std[0]) + np.float32(255 * spec.mean[0]))
    assert restored.min() >= 0 and restored.max() <= 255
    return restored.astype(np.uint8)


def as_multiset(pixels: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """pixels uint8 [N, ...], labels [N] -> sorted per-example byte strings: equal iff the same examples."""
    return sorted(p.tobytes() + bytes([int(label)]) for p, label in zip(pixels, labels, strict=True))


@needs_fashion_mnist
@pytest.mark.long
def test_fashion_mnist_local_is_the_real_dataset(data_dir):
    builder = images.get_builder("fashion_mnist_local", data_dir)
    assert builder.info.splits["train"].num_examples == 60_000
    assert builder.info.splits["test"].num_examples == 10_000
    assert builder.info.features["label"].names[0] == "t-shirt/top"

    # One full pass over the stored train split: every label, read without decoding the images.
    train = builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()}).batch(10_000)
    train_labels = np.concatenate([batch["label"] for batch in tfds.as_numpy(train)])
    assert np.bincount(train_labels, minlength=10).tolist() == [6000] * 10

    # The pipeline's eval pass over the test split holds exactly the examples of Debian's IDX files.
    ds = images.load_image_dataset("fashion_mnist_local", batch_size=1000, eval_batch_size=1000, data_dir=data_dir)
    assert (ds.num_train_examples, ds.num_eval_examples, ds.input_shape) == (60_000, 10_000, (28, 28, 1))
    batches = list(ds.make_eval_iterator())
    labels = np.concatenate([b["label"] for b in batches])
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10
    raw_images, raw_labels = fashion_mnist_local.read_split("test")
    assert as_multiset(raw_pixels(batches, "fashion_mnist_local"), labels) == as_multiset(raw_images, raw_labels)


def test_digits_local_is_sklearns_digits(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=32, eval_batch_size=50, data_dir=data_dir)
    assert (ds.num_train_examples, ds.num_eval_examples, ds.num_classes) == (1437, 360, 10)
    assert ds.input_shape == (8, 8, 1)
    scaled, labels = digits_local.load_scaled_digits()
    test_indices = digits_local.split_indices()["test"]
    batches = list(ds.make_eval_iterator())
    eval_labels = np.concatenate([b["label"][b["mask"] > 0] for b in batches])
    assert as_multiset(raw_pixels(batches, "digits_local"), eval_labels) == as_multiset(
        scaled[test_indices, :, :, None], labels[test_indices]
    )
    # The stored train split is exactly the other 1,437 sklearn examples.
    stored = images.get_builder("digits_local", data_dir).as_dataset(split="train", batch_size=-1)
    stored = tfds.as_numpy(stored)
    train_indices = digits_local.split_indices()["train"]
    assert as_multiset(stored["image"], stored["label"]) == as_multiset(
        scaled[train_indices, :, :, None], labels[train_indices]
    )


def test_batches_have_static_shapes_and_eval_covers_every_example_once(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=32, eval_batch_size=50, data_dir=data_dir)
    assert ds.steps_per_epoch == 1437 // 32
    train = next(ds.make_train_iterator(0))
    assert set(train) == {"image", "label"}
    assert train["image"].shape == (32, 8, 8, 1) and train["image"].dtype == np.float32
    assert train["label"].shape == (32,) and train["label"].dtype == np.int32
    batches = list(ds.make_eval_iterator())
    assert len(batches) == 8  # ceil(360 / 50)
    assert all(b["image"].shape == (50, 8, 8, 1) and b["image"].dtype == np.float32 for b in batches)
    assert all(b["label"].dtype == np.int32 and b["mask"].dtype == np.float32 for b in batches)
    assert sum(b["mask"].sum() for b in batches) == 360
    assert batches[-1]["mask"].tolist() == [1.0] * 10 + [0.0] * 40
    real = raw_pixels(batches, "digits_local").reshape(360, -1)
    assert len({row.tobytes() for row in real}) == 360  # sklearn's digits are all distinct images
    assert len(list(ds.make_eval_iterator())) == 8  # a second pass (from the cache) is the same pass


@pytest.mark.parametrize("augment", ["none", "flip_crop"])
@pytest.mark.parametrize("start", [5, 14, 31])
def test_restart_at_any_step_yields_the_same_batches(data_dir, augment, start):
    ds = images.load_image_dataset("digits_local", batch_size=100, data_dir=data_dir, augment=augment, seed=3)
    assert ds.steps_per_epoch == 14
    count = 20  # from each start, the stretch crosses at least one epoch boundary
    straight = list(itertools.islice(ds.make_train_iterator(0), start + count))[start:]
    resumed = list(itertools.islice(ds.make_train_iterator(start), count))
    assert len(resumed) == count
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_a_fresh_process_yields_the_same_batches(data_dir):
    """Resuming happens in a new process: nothing may depend on state built up in this one."""
    script = (
        "import sys, hashlib, itertools\n"
        "from common.data import images\n"
        "ds = images.load_image_dataset('digits_local', batch_size=100, augment='flip_crop', seed=3, "
        "data_dir=sys.argv[1])\n"
        "digest = hashlib.sha256()\n"
        "for b in itertools.islice(ds.make_train_iterator(13), 3):\n"
        "    digest.update(b['image'].tobytes()); digest.update(b['label'].tobytes())\n"
        "print(digest.hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, data_dir],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,  # a fresh TensorFlow import on a loaded 2-core machine can take minutes
        check=True,
    )
    ds = images.load_image_dataset("digits_local", batch_size=100, augment="flip_crop", seed=3, data_dir=data_dir)
    digest = hashlib.sha256()
    for b in itertools.islice(ds.make_train_iterator(13), 3):
        digest.update(b["image"].tobytes())
        digest.update(b["label"].tobytes())
    assert result.stdout.strip().splitlines()[-1] == digest.hexdigest()


def test_every_epoch_is_a_fresh_order_of_distinct_examples(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=100, data_dir=data_dir)  # 14 batches, 37 sit out
    batches = list(itertools.islice(ds.make_train_iterator(0), 2 * ds.steps_per_epoch))
    pixels = raw_pixels(batches, "digits_local").reshape(len(batches) * 100, -1)
    epochs = [[row.tobytes() for row in pixels[:1400]], [row.tobytes() for row in pixels[1400:]]]
    assert all(len(set(epoch)) == 1400 for epoch in epochs)  # no example twice within an epoch
    assert epochs[0] != epochs[1]
    assert len(set(epochs[0]) | set(epochs[1])) <= 1437


def test_seeds_change_the_order_and_the_same_seed_repeats_it(data_dir):
    first = {}
    for seed in (0, 1):
        ds = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, seed=seed, augment="flip_crop")
        first[seed] = next(ds.make_train_iterator(0))
    assert not np.array_equal(first[0]["label"], first[1]["label"])
    again = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, seed=0, augment="flip_crop")
    np.testing.assert_array_equal(next(again.make_train_iterator(0))["image"], first[0]["image"])


def test_flip_crop_changes_images_but_not_the_order(data_dir):
    plain = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, augment="none")
    augmented = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, augment="flip_crop")
    a, b = next(plain.make_train_iterator(0)), next(augmented.make_train_iterator(0))
    np.testing.assert_array_equal(a["label"], b["label"])
    assert a["image"].shape == b["image"].shape
    assert not np.allclose(a["image"], b["image"])
    # Eval is never augmented.
    np.testing.assert_array_equal(
        next(plain.make_eval_iterator())["image"], next(augmented.make_eval_iterator())["image"]
    )


def test_image_size_resizes_and_inception_crop_outputs_it(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=8, data_dir=data_dir, image_size=16)
    assert ds.input_shape == (16, 16, 1)
    assert next(ds.make_train_iterator(0))["image"].shape == (8, 16, 16, 1)
    assert next(ds.make_eval_iterator())["image"].shape == (8, 16, 16, 1)
    crops = images.load_image_dataset(
        "digits_local", batch_size=8, data_dir=data_dir, augment="inception_crop", image_size=12
    )
    assert next(crops.make_train_iterator(0))["image"].shape == (8, 12, 12, 1)
    assert next(crops.make_eval_iterator())["image"].shape == (8, 12, 12, 1)
    with pytest.raises(ValueError, match="needs image_size"):
        images.load_image_dataset("digits_local", batch_size=8, data_dir=data_dir, augment="inception_crop")


def test_unknown_names_list_the_choices(data_dir):
    with pytest.raises(UnknownNameError) as error:
        images.load_image_dataset("fashion_mnst", batch_size=8, data_dir=data_dir)
    assert str(error.value) == (
        "unknown dataset 'fashion_mnst'; valid choices: celeb_a_male, cifar10, cifar100, digits_local, "
        "fashion_mnist, fashion_mnist_local, imagenet2012, mnist"
    )
    with pytest.raises(UnknownNameError) as error:
        images.load_image_dataset("digits_local", batch_size=8, data_dir=data_dir, augment="mixup")
    assert str(error.value) == "unknown augmentation 'mixup'; valid choices: flip_crop, inception_crop, none"


def test_standard_dataset_that_is_not_prepared_says_how_to_get_it(tmp_path, monkeypatch):
    def no_downloads(*args, **kwargs):
        raise AssertionError("the pipeline tried to download a dataset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_downloads)
    with pytest.raises(core.DatasetNotAvailableError) as error:
        images.load_image_dataset("cifar10", batch_size=8, data_dir=str(tmp_path))
    assert isinstance(error.value, FileNotFoundError)
    message = str(error.value)
    assert "'cifar10' is not prepared" in message and str(tmp_path) in message
    assert "tfds build cifar10" in message and "fashion_mnist_local" in message


def test_missing_fashion_mnist_files_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv(fashion_mnist_local.DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as error:
        images.load_image_dataset("fashion_mnist_local", batch_size=8, data_dir=str(tmp_path / "tfds"))
    message = str(error.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message and "make setup" in message
    assert fashion_mnist_local.DEFAULT_DIR in message and fashion_mnist_local.DIR_ENV in message


def test_idx_reader_rejects_a_wrong_magic_number(tmp_path):
    labels_file = tmp_path / "labels.gz"
    with gzip.open(labels_file, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 4, 5, 6]))  # a valid 1-D IDX file of 3 labels
    assert fashion_mnist_local.read_idx(str(labels_file), fashion_mnist_local.LABELS_MAGIC).tolist() == [4, 5, 6]
    with pytest.raises(fashion_mnist_local.IdxFormatError, match="magic number 0x00000801, expected 0x00000803"):
        fashion_mnist_local.read_idx(str(labels_file), fashion_mnist_local.IMAGES_MAGIC)


def test_shapes_are_known_without_reading_data():
    assert images.dataset_shapes("cifar100") == ((32, 32, 3), 100)
    assert images.dataset_shapes("imagenet2012", 224) == ((224, 224, 3), 1000)
    with pytest.raises(ValueError, match="set config.dataset.image_size"):
        images.dataset_shapes("imagenet2012")


def test_hiding_accelerators_is_idempotent():
    core.hide_accelerators_from_tensorflow()
    core.hide_accelerators_from_tensorflow()
    assert tf.config.get_visible_devices("GPU") == []


def test_celeb_a_reader_crops_the_face_square_resizes_to_32_and_labels_male():
    """CelebA for LRLC: the central 178 x 178 of the 218 x 178 face, 32 x 32, label = the "Male" attribute."""
    face = np.full((218, 178, 3), 100, np.uint8)
    face[:20] = 255  # above the square: must be cropped away
    face[198:] = 0  # below it: likewise
    example = {"image": tf.constant(face), "attributes": {"Male": tf.constant(True), "Smiling": tf.constant(False)}}
    image, label = images.celeb_a_male(example)
    assert image.shape == (32, 32, 3) and image.dtype == tf.uint8
    np.testing.assert_array_equal(image.numpy(), 100)
    assert int(label) == 1
    assert images.dataset_shapes("celeb_a_male") == ((32, 32, 3), 2)
