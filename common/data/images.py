"""The image-classification input pipeline every vision paper uses.

`load_image_dataset(name, ...)` returns an `ImageDataset`: iterators of numpy batches plus the metadata a model
needs (input shape, number of classes, example counts). Sources are tfds datasets: the offline builders in
common/data/builders over real local data, or standard tfds names for users who have them prepared.

Resumable by construction: the training stream is a concatenation of epochs, each shuffled with a seed derived
from (seed, epoch) and augmented with stateless ops seeded by (seed, epoch, position). So
`make_train_iterator(s)` yields exactly what `make_train_iterator(0)` yields from batch s on, without replaying
the history.
"""

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from common.data.builders import digits_local, fashion_mnist_local
from common.data.builders.fashion_mnist_local import DatasetNotAvailableError
from common.registry import lookup

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset, known without reading it."""

    tfds_name: str
    num_classes: int
    native_shape: tuple[int | None, int | None, int]  # None: images vary in size (set image_size)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    builder_class: type | None = None  # offline builder; None: a standard tfds dataset
    check_available: Callable[[], None] | None = None


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist_local": DatasetSpec(
        "fashion_mnist_local",
        10,
        (28, 28, 1),
        (0.2860,),
        (0.3530,),
        fashion_mnist_local.FashionMnistLocal,
        fashion_mnist_local.check_files_present,
    ),
    "digits_local": DatasetSpec("digits_local", 10, (8, 8, 1), (0.3053,), (0.3760,), digits_local.DigitsLocal),
    "mnist": DatasetSpec("mnist", 10, (28, 28, 1), (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetSpec("fashion_mnist", 10, (28, 28, 1), (0.2860,), (0.3530,)),
    "cifar10": DatasetSpec("cifar10", 10, (32, 32, 3), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetSpec("cifar100", 100, (32, 32, 3), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": DatasetSpec("imagenet2012", 1000, (None, None, 3), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """What every image-classification paper gets back, whatever the source.

    make_train_iterator(start_step) yields {"image": float32 [B,H,W,C], "label": int32 [B]} forever.
    make_eval_iterator() yields one pass over the eval split in batches of eval_batch_size, the last one padded;
    eval batches add "mask": float32 [B] (1 for real examples, 0 for padding).
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    num_train_examples: int
    num_eval_examples: int
    train_batch_size: int
    eval_batch_size: int
    make_train_iterator: Callable[[int], Iterator[Batch]]
    make_eval_iterator: Callable[[], Iterator[Batch]]

    @property
    def steps_per_epoch(self) -> int:
        return self.num_train_examples // self.train_batch_size


def hide_accelerators_from_tensorflow() -> None:
    """TensorFlow only feeds data: keep it from claiming GPU memory that JAX needs."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised; visibility can no longer change
        pass


def dataset_shapes(name: str, image_size: int | None = None) -> tuple[tuple[int, int, int], int]:
    """(input shape after preprocessing, number of classes), without reading any data (for --dry_run)."""
    spec = lookup(DATASETS, name, "dataset")
    height, width, channels = spec.native_shape
    if image_size:
        height = width = image_size
    if height is None:
        raise ValueError(f"dataset {name!r} has images of varying size: set config.dataset.image_size")
    return (height, width, channels), spec.num_classes


def get_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder for `name`: offline builders are prepared on first use; nothing downloads."""
    spec = lookup(DATASETS, name, "dataset")
    if spec.builder_class is not None:
        builder = spec.builder_class(data_dir=data_dir)
        if not builder.is_prepared():
            if spec.check_available is not None:
                spec.check_available()
            builder.download_and_prepare()
        return builder
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise DatasetNotAvailableError(
            f"tfds dataset {name!r} is not prepared in {builder.data_dir_root}. This machine does not download "
            f"datasets: run `tfds build {spec.tfds_name}` on a machine with internet (imagenet2012 also needs its "
            "manual download), copy the result there or pass --config.dataset.data_dir=DIR, or use an offline "
            f"dataset: {', '.join(n for n, s in DATASETS.items() if s.builder_class is not None)}."
        )
    return builder


# ---------------------------------------------------------------------------------------------------------------
# Augmentations: (image uint8 [H,W,C], seed int32 [2], out_size) -> image float32 [out,out,C] in [0, 255].


def _resize(image: tf.Tensor, size: int | None) -> tf.Tensor:
    image = tf.cast(image, tf.float32)
    if size is None or (image.shape[0] == size and image.shape[1] == size):
        return image
    return tf.image.resize(image, (size, size), method="bilinear")


def _none(image, seed, size):
    return _resize(image, size)


def _flip_crop(image, seed, size):
    """CIFAR-style: zero-pad 4 pixels, random crop back, random horizontal flip."""
    image = _resize(image, size)
    height, width, channels = image.shape
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(padded, (height, width, channels), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _inception_crop(image, seed, size):
    """ImageNet-style: a random crop of 8%-100% of the area, aspect 3/4-4/3, resized to `size`; random flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        tf.zeros([0, 0, 4]),
        seed=crop_seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _centre_crop(image, seed, size):
    """ImageNet eval: resize the shorter side to size/0.875, then take the central size x size."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / 0.875) / tf.reduce_min(shape)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.cast(tf.round(shape * scale), tf.int32))
    return tf.image.resize_with_crop_or_pad(resized, size, size)


# name -> (train transform, eval transform)
AUGMENTATIONS = {
    "none": (_none, _none),
    "flip_crop": (_flip_crop, _none),
    "inception_crop": (_inception_crop, _centre_crop),
}


def _seed_pair(seed: int, salt: int) -> tf.Tensor:
    return tf.constant([seed % (2**31), salt], tf.int64)


def load_image_dataset(
    name: str,
    *,
    batch_size: int,
    eval_batch_size: int | None = None,
    seed: int = 0,
    augment: str = "none",
    image_size: int | None = None,
    data_dir: str | None = None,
    train_split: str = "train",
    eval_split: str = "test",
    shuffle_buffer: int | None = None,
    cache: bool = True,
) -> ImageDataset:
    """Builds the train and eval pipelines of dataset `name` (one of DATASETS)."""
    spec = lookup(DATASETS, name, "dataset")
    train_transform, eval_transform = lookup(AUGMENTATIONS, augment, "augmentation")
    input_shape, num_classes = dataset_shapes(name, image_size)
    if image_size is None and augment == "inception_crop":
        raise ValueError("augment='inception_crop' needs image_size")
    hide_accelerators_from_tensorflow()
    builder = get_builder(name, data_dir)
    num_train = builder.info.splits[train_split].num_examples
    num_eval = builder.info.splits[eval_split].num_examples
    eval_batch_size = eval_batch_size or batch_size
    size = image_size
    mean = tf.constant(spec.mean, tf.float32) * 255.0
    std = tf.constant(spec.std, tf.float32) * 255.0
    read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)

    def read(split: str) -> tf.data.Dataset:
        ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
        return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)

    def normalise(image):
        return (image - mean) / std

    def make_train_iterator(start_step: int = 0) -> Iterator[Batch]:
        examples = read(train_split)
        if cache:
            examples = examples.cache()
        buffer = shuffle_buffer or num_train
        start_example = start_step * batch_size
        start_epoch, skip = divmod(start_example, num_train)

        def epoch(e):
            shuffled = examples.shuffle(
                buffer, seed=tf.cast(seed, tf.int64) * 1_000_003 + e, reshuffle_each_iteration=False
            )
            positioned = shuffled.enumerate().map(lambda i, ex: (e, i, ex[0], ex[1]))
            return positioned.skip(tf.where(e == start_epoch, tf.cast(skip, tf.int64), tf.constant(0, tf.int64)))

        def preprocess(e, i, image, label):
            example_seed = _seed_pair(seed, 0) + tf.stack([tf.constant(0, tf.int64), e * num_train + i])
            image = train_transform(image, tf.cast(example_seed, tf.int32), size)
            return {"image": normalise(image), "label": label}

        ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch)
        ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        return ds.as_numpy_iterator()

    def make_eval_iterator() -> Iterator[Batch]:
        def preprocess(image, label):
            return {"image": normalise(eval_transform(image, None, size)), "label": label}

        ds = read(eval_split).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for batch in ds.batch(eval_batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
            yield _pad_batch(batch, eval_batch_size)

    return ImageDataset(
        name=name,
        input_shape=input_shape,
        num_classes=num_classes,
        num_train_examples=num_train,
        num_eval_examples=num_eval,
        train_batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        make_train_iterator=make_train_iterator,
        make_eval_iterator=make_eval_iterator,
    )


def _pad_batch(batch: Batch, size: int) -> Batch:
    """Pads a short final eval batch to `size` examples so every batch has one static shape; adds "mask"."""
    real = len(batch["label"])
    padded = (
        {
            key: np.concatenate([value, np.zeros((size - real, *value.shape[1:]), value.dtype)])
            for key, value in batch.items()
        }
        if real < size
        else batch
    )
    mask = np.zeros(size, np.float32)
    mask[:real] = 1.0
    return dict(padded, mask=mask)
