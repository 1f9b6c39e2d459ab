"""Image classification on the shared loop: the loss, the eval metrics and the end-to-end job.

Used by every paper whose experiment is "train a backbone on an image dataset and report top-1" (Swish,
stand-alone attention, HaloNet, low-rank local connectivity). A paper passes its own `build_model`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.train import loop, optim

BuildModel = Callable[[ConfigDict, tuple[int, int, int], int, nnx.Rngs], nnx.Module]


def cross_entropy_loss(model: nnx.Module, batch: dict, rng: jax.Array, *, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy of `model(batch["image"])` [B,H,W,C] against `batch["label"]` [B]."""
    logits = model(batch["image"])
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], num_classes), label_smoothing)
    loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()
    accuracy = (logits.argmax(-1) == batch["label"]).mean()
    return loss, {"accuracy": accuracy}


def eval_sums(model: nnx.Module, batch: dict) -> dict[str, jax.Array]:
    """Sums of loss and correct predictions over the real (mask == 1) examples of an eval batch."""
    logits = model(batch["image"]).astype(jnp.float32)
    mask = batch["mask"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    correct = logits.argmax(-1) == batch["label"]
    return {"loss": (loss * mask).sum(), "accuracy": (correct * mask).sum(), "count": mask.sum()}


def load_dataset(config: ConfigDict) -> images.ImageDataset:
    """The dataset named by `config.dataset`, batched for training and eval."""
    ds = config.dataset
    return images.load_image_dataset(
        ds.name,
        batch_size=ds.batch_size,
        eval_batch_size=ds.get("eval_batch_size"),
        seed=config.seed,
        augment=ds.get("augment", "none"),
        image_size=ds.get("image_size"),
        data_dir=ds.get("data_dir"),
        train_split=ds.get("train_split", "train"),
        eval_split=ds.get("eval_split", "test"),
    )


def train_and_evaluate(config: ConfigDict, workdir: str, build_model: BuildModel) -> dict[str, float]:
    """Loads the data, builds the model and trains it; returns the final eval metrics."""
    dataset = load_dataset(config)
    model = build_model(config, dataset.input_shape, dataset.num_classes, nnx.Rngs(config.seed))
    label_smoothing = float(config.get("label_smoothing", 0.0))

    def loss_fn(model, batch, rng):
        return cross_entropy_loss(model, batch, rng, label_smoothing=label_smoothing)

    task = loop.TrainTask(
        model=model,
        loss_fn=loss_fn,
        make_train_iterator=dataset.make_train_iterator,
        eval_fn=eval_sums,
        make_eval_iterator=dataset.make_eval_iterator,
    )
    tx = optim.make_optimizer(config.optimizer, config.train.num_steps)
    return loop.train(task, tx, config.train, workdir, seed=config.seed)
