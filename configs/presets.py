"""Shared config presets: the sections every image-classification paper's config starts from.

A paper's `config.py` calls `image_classification()` or one of the settings built on it (the ImageNet recipe, the
CPU-scale Fashion-MNIST run, the digits smoke run) and overrides what differs; dataset presets set the fields that
go with a dataset (batch size, augmentation, eval split), so switching dataset is one call.
"""

from ml_collections import ConfigDict

from common.registry import lookup


def _dataset(
    name: str, *, batch_size: int, augment: str, eval_batch_size: int | None = None, image_size: int | None = None
) -> ConfigDict:
    return ConfigDict(
        {
            "name": name,
            "batch_size": batch_size,
            "eval_batch_size": eval_batch_size or batch_size,
            "augment": augment,
            "image_size": image_size,
            "data_dir": None,
            "train_split": "train",
            "eval_split": "validation" if name == "imagenet2012" else "test",
        }
    )


DATASET_PRESETS = {
    # Offline, real data (see docs/data.md): the defaults on a machine without internet.
    "fashion_mnist_local": lambda: _dataset("fashion_mnist_local", batch_size=128, augment="none", eval_batch_size=500),
    "digits_local": lambda: _dataset("digits_local", batch_size=32, augment="none", eval_batch_size=40),
    # Standard tfds names, for users who have the prepared data in their tfds data_dir.
    "mnist": lambda: _dataset("mnist", batch_size=128, augment="none", eval_batch_size=500),
    "cifar10": lambda: _dataset("cifar10", batch_size=128, augment="flip_crop", eval_batch_size=500),
    "cifar100": lambda: _dataset("cifar100", batch_size=128, augment="flip_crop", eval_batch_size=500),
    "celeb_a_male": lambda: _dataset("celeb_a_male", batch_size=128, augment="none", eval_batch_size=500),
    "imagenet2012": lambda: _dataset(
        "imagenet2012", batch_size=256, augment="inception_crop", image_size=224, eval_batch_size=250
    ),
}


def dataset_preset(name: str) -> ConfigDict:
    return lookup(DATASET_PRESETS, name, "dataset preset")()


def image_classification(dataset: str = "fashion_mnist_local") -> ConfigDict:
    """seed, dataset, optimizer and train sections with defaults that suit a small CPU run."""
    return ConfigDict(
        {
            "seed": 0,
            "label_smoothing": 0.0,
            "dataset": dataset_preset(dataset),
            "optimizer": {
                "name": "nesterov",
                "learning_rate": 0.1,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "schedule": "cosine",
                "warmup_steps": 100,
                "final_lr_fraction": 0.0,
            },
            "train": train_loop(num_steps=1000, log_every=50, checkpoint_every=500),
        }
    )


def train_loop(*, num_steps: int, log_every: int, checkpoint_every: int) -> ConfigDict:
    """The `train` section `common.train.loop.train` reads. init_from.workdir (empty: off) starts a fresh run from
    that run's saved `part`, with `mapping` 'source/path->target/path' pairs (empty: the whole tree); a paper that
    starts from several runs replaces init_from with a dict of such sources by name (`loop.init_sources`)."""
    return ConfigDict(
        {
            "num_steps": num_steps,
            "log_every": log_every,
            "eval_every": 0,
            "interim_eval_batches": 0,
            "checkpoint_every": checkpoint_every,
            "max_to_keep": 2,
            "ema_decay": 0.0,
            "async_checkpoints": True,
            "init_from": {"workdir": "", "mapping": "", "part": "params"},
        }
    )


IMAGENET_TRAIN_EXAMPLES = 1_281_167


def imagenet(
    *,
    epochs: int,
    weight_decay: float,
    image_size: int = 224,
    batch_size: int = 4096,
    final_lr_fraction: float = 0.0,
    ema_decay: float = 0.0,
) -> ConfigDict:
    """The large-batch ImageNet recipe the attention papers share: Nesterov (momentum 0.9) at lr 0.1 per 256
    images (1.6 at batch 4096), 10 warm-up epochs, cosine to `final_lr_fraction` of the peak; eval every 5 epochs
    and a checkpoint every epoch."""
    config = image_classification("imagenet2012")
    steps_per_epoch = IMAGENET_TRAIN_EXAMPLES // batch_size
    config.dataset.update(batch_size=batch_size, image_size=image_size)
    config.optimizer.update(
        name="nesterov",
        learning_rate=0.1 * batch_size / 256,
        momentum=0.9,
        weight_decay=weight_decay,
        schedule="cosine",
        warmup_steps=10 * steps_per_epoch,
        final_lr_fraction=final_lr_fraction,
    )
    config.train.update(
        num_steps=epochs * steps_per_epoch,
        log_every=100,
        eval_every=5 * steps_per_epoch,
        checkpoint_every=steps_per_epoch,
        ema_decay=ema_decay,
    )
    return config


def fashion_mnist_cpu(num_steps: int, *, log_every: int = 25, checkpoint_every: int = 200) -> ConfigDict:
    """The CPU-scale run of the image papers: offline Fashion-MNIST, batch 64, lr 0.05 after 50 warm-up steps."""
    config = image_classification("fashion_mnist_local")
    config.dataset.batch_size = 64
    config.optimizer.update(learning_rate=0.05, warmup_steps=50)
    config.train.update(num_steps=num_steps, log_every=log_every, checkpoint_every=checkpoint_every)
    return config


def fashion_mnist_reproduce(num_steps: int, *, eval_every: int) -> ConfigDict:
    """The `reproduce` scale of the image papers (docs/results.md): offline Fashion-MNIST at batch 128, lr 0.1 after
    100 warm-up steps with cosine decay to 0, test accuracy every `eval_every` steps: the learning curve whose
    plateau a verdict needs. Each paper pairs it with a model small enough for its whole table to train in about
    45 minutes of 2 CPU cores."""
    config = image_classification("fashion_mnist_local")
    config.dataset.batch_size = 128
    config.train.update(num_steps=num_steps, log_every=50, eval_every=eval_every, checkpoint_every=2 * eval_every)
    # The curve's points read 2,048 of the 10,000 test images (a fifth of the cost; the plateau rule needs at least
    # three points in the last quarter of the steps), the final evaluation all of them.
    config.train.interim_eval_batches = 16
    return config


def digits_smoke(num_steps: int, *, checkpoint_every: int) -> ConfigDict:
    """The smoke run of the image papers: sklearn's digits, lr 0.05 after 5 warm-up steps, a log every 10 steps."""
    config = image_classification("digits_local")
    config.optimizer.update(learning_rate=0.05, warmup_steps=5)
    config.train.update(num_steps=num_steps, log_every=10, checkpoint_every=checkpoint_every)
    return config
