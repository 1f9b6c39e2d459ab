"""The image pipeline over real offline data: counts, shapes, exact resume, seeds and error messages."""

import itertools
import os

import numpy as np
import pytest

from common.data import images
from common.data.builders import digits_local, fashion_mnist_local
from common.registry import UnknownNameError

HAVE_FASHION_MNIST = os.path.exists(os.path.join(fashion_mnist_local.source_dir(), "train-images-idx3-ubyte.gz"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed (make setup)")
def test_fashion_mnist_local_is_the_real_dataset(data_dir):
    builder = images.get_builder("fashion_mnist_local", data_dir)
    assert builder.info.splits["train"].num_examples == 60_000
    assert builder.info.splits["test"].num_examples == 10_000
    ds = images.load_image_dataset("fashion_mnist_local", batch_size=1000, eval_batch_size=1000, data_dir=data_dir)
    labels = np.concatenate([b["label"] for b in ds.make_eval_iterator()])
    assert len(labels) == 10_000 and np.bincount(labels).tolist() == [1000] * 10
    train_labels = np.concatenate([b["label"] for b in itertools.islice(ds.make_train_iterator(0), 60)])
    assert np.bincount(train_labels).tolist() == [6000] * 10  # one full epoch: 60 batches of 1000
    raw = fashion_mnist_local.read_idx(os.path.join(fashion_mnist_local.source_dir(), "t10k-images-idx3-ubyte.gz"))
    pixels = np.concatenate([b["image"] for b in ds.make_eval_iterator()]) * (0.3530 * 255) + 0.2860 * 255
    assert_same_images(pixels, raw)


def assert_same_images(pixels, expected):
    """The same images up to order (tfds stores examples in hashed-key order): compare sorted per-image sums."""
    sums = np.sort(np.round(pixels).reshape(len(pixels), -1).sum(1))
    np.testing.assert_array_equal(sums, np.sort(expected.reshape(len(expected), -1).astype(np.int64).sum(1)))


def test_digits_local_is_sklearns_digits(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=32, eval_batch_size=50, data_dir=data_dir)
    assert (ds.num_train_examples, ds.num_eval_examples, ds.num_classes) == (1437, 360, 10)
    assert ds.input_shape == (8, 8, 1)
    scaled, labels = digits_local.load_scaled_digits()
    order = np.random.default_rng(0).permutation(1797)
    batches = list(ds.make_eval_iterator())
    pixels = np.concatenate([b["image"] for b in batches])[:360] * (0.3760 * 255) + 0.3053 * 255
    test_indices = order[digits_local.NUM_TRAIN :]
    assert_same_images(pixels, scaled[test_indices])
    eval_labels = np.concatenate([b["label"] for b in batches])[:360]
    assert np.bincount(eval_labels).tolist() == np.bincount(labels[test_indices]).tolist()


def test_batches_have_static_shapes_and_eval_covers_every_example_once(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=32, eval_batch_size=50, data_dir=data_dir)
    train = next(ds.make_train_iterator(0))
    assert train["image"].shape == (32, 8, 8, 1) and train["image"].dtype == np.float32
    assert train["label"].shape == (32,) and train["label"].dtype == np.int32
    batches = list(ds.make_eval_iterator())
    assert len(batches) == 8  # ceil(360 / 50)
    assert all(b["image"].shape == (50, 8, 8, 1) for b in batches)
    assert sum(b["mask"].sum() for b in batches) == 360
    assert batches[-1]["mask"].tolist() == [1.0] * 10 + [0.0] * 40


@pytest.mark.parametrize("augment", ["none", "flip_crop"])
def test_restart_at_any_step_yields_the_same_batches(data_dir, augment):
    ds = images.load_image_dataset("digits_local", batch_size=100, data_dir=data_dir, augment=augment, seed=3)
    start, count = 12, 20  # 14 batches per epoch: crosses epoch boundaries, and batches straddle epochs
    straight = list(itertools.islice(ds.make_train_iterator(0), start + count))[start:]
    resumed = list(itertools.islice(ds.make_train_iterator(start), count))
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_every_epoch_is_a_permutation_in_a_new_order(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=479, data_dir=data_dir)  # 3 batches = 1 epoch
    labels = np.concatenate([b["label"] for b in itertools.islice(ds.make_train_iterator(0), 6)])
    first, second = labels[:1437], labels[1437:]
    assert np.bincount(first).tolist() == np.bincount(second).tolist()
    assert not np.array_equal(first, second)


def test_seeds_change_order_and_augmentation(data_dir):
    batch = {}
    for seed in (0, 1):
        ds = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, seed=seed)
        batch[seed] = next(ds.make_train_iterator(0))
    assert not np.array_equal(batch[0]["label"], batch[1]["label"])


def test_flip_crop_changes_images_but_keeps_their_shape(data_dir):
    plain = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, augment="none")
    augmented = images.load_image_dataset("digits_local", batch_size=64, data_dir=data_dir, augment="flip_crop")
    a, b = next(plain.make_train_iterator(0)), next(augmented.make_train_iterator(0))
    np.testing.assert_array_equal(a["label"], b["label"])
    assert a["image"].shape == b["image"].shape
    assert not np.allclose(a["image"], b["image"])


def test_image_size_resizes(data_dir):
    ds = images.load_image_dataset("digits_local", batch_size=8, data_dir=data_dir, image_size=16)
    assert ds.input_shape == (16, 16, 1)
    assert next(ds.make_train_iterator(0))["image"].shape == (8, 16, 16, 1)
    assert next(ds.make_eval_iterator())["image"].shape == (8, 16, 16, 1)


def test_unknown_names_list_the_choices(data_dir):
    with pytest.raises(UnknownNameError) as error:
        images.load_image_dataset("fashion_mnst", batch_size=8, data_dir=data_dir)
    assert str(error.value) == (
        "unknown dataset 'fashion_mnst'; valid choices: cifar10, cifar100, digits_local, "
        "fashion_mnist, fashion_mnist_local, imagenet2012, mnist"
    )
    with pytest.raises(UnknownNameError, match="unknown augmentation 'mixup'; valid choices: flip_crop, "):
        images.load_image_dataset("digits_local", batch_size=8, data_dir=data_dir, augment="mixup")


def test_standard_dataset_that_is_not_prepared_says_how_to_get_it(tmp_path):
    with pytest.raises(images.DatasetNotAvailableError, match=r"'cifar10' is not prepared.*tfds build cifar10"):
        images.load_image_dataset("cifar10", batch_size=8, data_dir=str(tmp_path))


def test_missing_fashion_mnist_files_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv(fashion_mnist_local.DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(images.DatasetNotAvailableError, match="apt-get install dataset-fashion-mnist"):
        images.load_image_dataset("fashion_mnist_local", batch_size=8, data_dir=str(tmp_path / "tfds"))


def test_shapes_are_known_without_reading_data():
    assert images.dataset_shapes("cifar100") == ((32, 32, 3), 100)
    assert images.dataset_shapes("imagenet2012", 224) == ((224, 224, 3), 1000)
    with pytest.raises(ValueError, match="set config.dataset.image_size"):
        images.dataset_shapes("imagenet2012")
