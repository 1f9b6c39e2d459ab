"""The image-classification input pipeline every vision paper uses.

`load_image_dataset(name, ...)` returns an `ImageDataset`: iterators of numpy batches plus the metadata a model
needs (input shape, number of classes, example counts). Sources are tfds datasets: the offline builders in
common/data/builders over real local data, or standard tfds names for users who have them prepared.

The stream is common/data/core.py's: resumable at any step (`make_train_iterator(s)` yields exactly what
`make_train_iterator(0)` yields from batch s on), augmented by stateless random ops seeded by (seed, epoch,
position), and split between the processes of a multi-host job, each reading its own part of every split.
"""

import dataclasses
from collections.abc import Callable, Iterator

import tensorflow as tf
import tensorflow_datasets as tfds

from common.data import core
from common.data.builders import digits_local, fashion_mnist_local
from common.registry import lookup

Batch = core.Batch


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset, known without reading it."""

    tfds_name: str
    num_classes: int
    native_shape: tuple[int | None, int | None, int]  # (H, W, C); None: images vary in size (set image_size)
    mean: tuple[float, ...]  # per channel, of pixels scaled to [0, 1]
    std: tuple[float, ...]
    default_eval_split: str = "test"
    builder_class: type[tfds.core.GeneratorBasedBuilder] | None = None  # offline builder; None: standard tfds
    # tfds example -> (image uint8 [H, W, C], label); None: the example's "image" and "label" features.
    read_example: Callable[[dict], tuple[tf.Tensor, tf.Tensor]] | None = None
    check_available: Callable[[], None] | None = None  # raises core.DatasetNotAvailableError when the source is missing

    @property
    def is_offline(self) -> bool:
        return self.builder_class is not None


def celeb_a_male(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
    """CelebA as LRLC's paper uses it: the central 178 x 178 square of the 218 x 178 aligned face, resized to
    32 x 32, labelled by the binary "Male" attribute."""
    face = tf.image.crop_to_bounding_box(example["image"], 20, 0, 178, 178)
    small = tf.image.resize(face, (32, 32), method="area", antialias=True)
    return tf.cast(tf.round(small), tf.uint8), tf.cast(example["attributes"]["Male"], tf.int32)


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist_local": DatasetSpec(
        "fashion_mnist_local",
        num_classes=10,
        native_shape=(28, 28, 1),
        mean=(0.2860,),
        std=(0.3530,),
        builder_class=fashion_mnist_local.FashionMnistLocal,
        check_available=fashion_mnist_local.check_files_present,
    ),
    "digits_local": DatasetSpec(
        "digits_local",
        num_classes=10,
        native_shape=(8, 8, 1),
        mean=(0.3053,),
        std=(0.3760,),
        builder_class=digits_local.DigitsLocal,
    ),
    "mnist": DatasetSpec("mnist", 10, (28, 28, 1), (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetSpec("fashion_mnist", 10, (28, 28, 1), (0.2860,), (0.3530,)),
    "cifar10": DatasetSpec("cifar10", 10, (32, 32, 3), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetSpec("cifar100", 100, (32, 32, 3), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # Normalised to [-1, 1] (mean and std 0.5: a convention, not the dataset's statistics).
    "celeb_a_male": DatasetSpec("celeb_a", 2, (32, 32, 3), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), read_example=celeb_a_male),
    "imagenet2012": DatasetSpec(
        "imagenet2012",
        1000,
        (None, None, 3),
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        default_eval_split="validation",
    ),
}


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """What every image-classification paper gets back, whatever the source.

    make_train_iterator(start_step) yields {"image": float32 [B,H,W,C], "label": int32 [B]} forever, starting at
    batch `start_step` of the stream. make_eval_iterator() yields one pass over the eval split in batches of
    eval_batch_size, the last one padded; eval batches add "mask": float32 [B] (1 real example, 0 padding).
    B is this process's part of the global batch sizes below: train_batch_size // process_count (and likewise for
    eval); each process yields as many eval batches, all-padding ones where its part of the split runs out first.
    """

    name: str
    input_shape: tuple[int, int, int]  # (H, W, C) after preprocessing
    num_classes: int
    num_train_examples: int
    num_eval_examples: int
    train_batch_size: int
    eval_batch_size: int
    make_train_iterator: Callable[[int], Iterator[Batch]]
    make_eval_iterator: Callable[[], Iterator[Batch]]

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch; the examples left over after the last whole batch sit that epoch out."""
        return self.num_train_examples // self.train_batch_size


def dataset_shapes(name: str, image_size: int | None = None) -> tuple[tuple[int, int, int], int]:
    """(input shape after preprocessing, number of classes), without reading any data (for --dry_run)."""
    spec = lookup(DATASETS, name, "dataset")
    height, width, channels = spec.native_shape
    if image_size:
        height = width = image_size
    if height is None or width is None:
        raise ValueError(f"dataset {name!r} has images of varying size: set config.dataset.image_size")
    return (height, width, channels), spec.num_classes


def get_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder for `name`: offline builders are prepared on first use; nothing downloads."""
    spec = lookup(DATASETS, name, "dataset")
    if spec.is_offline:
        return core.prepare_offline(lambda: spec.builder_class(data_dir=data_dir), spec.check_available)
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        offline = [n for n, s in DATASETS.items() if s.is_offline]
        raise core.not_prepared_error(
            name, spec.tfds_name, builder, offline, note="(imagenet2012 also needs its manual download) "
        )
    return builder


# ---------------------------------------------------------------------------------------------------------------
# Augmentations. Each takes (image uint8 [H,W,C], seed int64 [2] or None at eval, output side or None) and returns
# float32 [H',W',C] pixels in [0, 255]. Train transforms use only stateless random ops seeded by `seed`.


def _to_float_resized(image: tf.Tensor, size: int | None) -> tf.Tensor:
    """Bilinear resize to size x size, unless `size` is None or already the image's size."""
    image = tf.cast(image, tf.float32)
    if size is None or (image.shape[0] == size and image.shape[1] == size):
        return image
    return tf.image.resize(image, (size, size), method="bilinear")


def _no_augmentation(image: tf.Tensor, seed: tf.Tensor | None, size: int | None) -> tf.Tensor:
    return _to_float_resized(image, size)


FLIP_CROP_PADDING = 4


def _flip_crop(image: tf.Tensor, seed: tf.Tensor, size: int | None) -> tf.Tensor:
    """CIFAR-style: zero-pad 4 pixels on each side, random crop back to the original size, random h-flip."""
    image = _to_float_resized(image, size)
    height, width, channels = image.shape
    pad = FLIP_CROP_PADDING
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(padded, (height, width, channels), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _inception_crop(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
    """ImageNet-style: a random crop of 8%-100% of the area with aspect 3/4-4/3, resized to `size`; random h-flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, crop_shape, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([1, 0, 4]),
        seed=crop_seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_shape)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


CENTRE_CROP_FRACTION = 0.875  # the usual ImageNet eval: 224 from a 256 resize


def _centre_crop(image: tf.Tensor, seed: tf.Tensor | None, size: int) -> tf.Tensor:
    """ImageNet eval: resize the shorter side to size / 0.875 (bilinear), then take the central size x size."""
    height_width = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / CENTRE_CROP_FRACTION) / tf.reduce_min(height_width)
    new_height_width = tf.maximum(tf.cast(tf.round(height_width * scale), tf.int32), size)
    resized = tf.image.resize(tf.cast(image, tf.float32), new_height_width, method="bilinear")
    return tf.image.resize_with_crop_or_pad(resized, size, size)


Transform = Callable[[tf.Tensor, tf.Tensor | None, int | None], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Augmentation:
    train: Transform
    eval: Transform
    needs_image_size: bool = False


AUGMENTATIONS: dict[str, Augmentation] = {
    "none": Augmentation(_no_augmentation, _no_augmentation),
    "flip_crop": Augmentation(_flip_crop, _no_augmentation),
    "inception_crop": Augmentation(_inception_crop, _centre_crop, needs_image_size=True),
}


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
    eval_split: str | None = None,
    shuffle_buffer: int | None = None,
    cache: bool = True,
    shard: core.ProcessShard | None = None,
) -> ImageDataset:
    """Builds the train and eval pipelines of dataset `name` (one of DATASETS).

    augment: one of AUGMENTATIONS (the eval split gets that augmentation's deterministic eval transform).
    image_size: output side in pixels; None keeps the native size (required for inception_crop and imagenet2012).
    data_dir: tfds data dir (default ~/tensorflow_datasets); offline datasets are prepared there on first use.
    train_split / eval_split: tfds split names, slices allowed ("train[:90%]"); eval_split None takes the dataset's
      usual one (DATASETS[name].default_eval_split: "test", or "validation" for imagenet2012).
    shuffle_buffer: examples held by the per-epoch shuffle; None shuffles the whole train split.
    cache: keep the decoded splits in memory after their first pass (turn off for ImageNet-sized data).
    shard: the part of the data this process reads; None: this JAX process's (all of it for a single process).
      batch_size and eval_batch_size are global: each process yields its 1 / process_count of them.
    """
    spec = lookup(DATASETS, name, "dataset")
    augmentation = lookup(AUGMENTATIONS, augment, "augmentation")
    if augmentation.needs_image_size and image_size is None:
        raise ValueError(f"augment={augment!r} needs image_size")
    input_shape, num_classes = dataset_shapes(name, image_size)
    if batch_size <= 0 or (eval_batch_size is not None and eval_batch_size <= 0):
        raise ValueError(f"batch sizes must be positive, got batch_size={batch_size}, eval={eval_batch_size}")
    core.check_seed(seed)
    eval_batch_size = eval_batch_size or batch_size
    eval_split = eval_split or spec.default_eval_split

    core.hide_accelerators_from_tensorflow()
    builder = get_builder(name, data_dir)
    num_train = builder.info.splits[train_split].num_examples
    num_eval = builder.info.splits[eval_split].num_examples
    steps_per_epoch = num_train // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_train} examples of {name}'s {train_split!r}")
    shard = shard or core.ProcessShard.of_this_process()
    shard.local_batch_size(batch_size)  # fails now, naming the value, rather than at the first batch
    local_eval_batch_size = shard.local_batch_size(eval_batch_size, "eval_batch_size")
    eval_shard_sizes = [builder.info.splits[split].num_examples for split in shard.all_splits(eval_split)]
    mean = tf.constant(spec.mean, tf.float32) * 255.0
    std = tf.constant(spec.std, tf.float32) * 255.0

    read_example = spec.read_example or (lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
    # Built once, so the in-memory caches are filled once and shared by every iterator made below.
    train_examples = core.read_split(builder, shard.split(train_split), read_example, cache=cache)
    eval_examples = core.read_split(builder, shard.split(eval_split), read_example, cache=cache)

    def normalise(pixels: tf.Tensor) -> tf.Tensor:
        """float32 [H,W,C] in [0, 255] -> per-channel standardised."""
        return (pixels - mean) / std

    def augment_example(example, example_seed):
        image, label = example
        return {"image": normalise(augmentation.train(image, example_seed, image_size)), "label": label}

    def make_train_iterator(start_step: int = 0) -> Iterator[Batch]:
        batches = core.train_batches(
            train_examples,
            augment_example,
            seed=seed,
            global_batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            start_step=start_step,
            shuffle_buffer=shuffle_buffer or num_train,
            shard=shard,
        )
        return batches.as_numpy_iterator()

    def eval_example(image, label):
        pixels = augmentation.eval(image, None, image_size)
        return {"image": normalise(pixels), "label": label, "mask": tf.constant(1.0, tf.float32)}

    eval_batches = core.eval_batches(
        eval_examples.map(eval_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True),
        local_eval_batch_size,
        core.num_eval_batches(eval_shard_sizes, local_eval_batch_size),
    )

    def make_eval_iterator() -> Iterator[Batch]:
        return eval_batches.as_numpy_iterator()

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
