"""Training for PixelCNN++: the negative log-likelihood of the discretised logistic mixture, in bits per dimension.

The image pipeline (common/data/images.py) standardises pixels per channel; the likelihood needs the original
8-bit values, which `pixel_values` recovers exactly (the standardisation is affine and the pixels were integers).
The loss is nats per sub-pixel (H * W * C of them); metrics report bits per dimension (nats / ln 2).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.nn import logistic_mixture
from common.train import loop, optim
from papers.fast_generation import generate, model


def load_dataset(config: ConfigDict) -> images.ImageDataset:
    ds = config.dataset
    return images.load_image_dataset(
        ds.name,
        batch_size=ds.batch_size,
        eval_batch_size=ds.eval_batch_size,
        seed=config.seed,
        augment=ds.augment,
        data_dir=ds.data_dir,
        train_split=ds.train_split,
        eval_split=ds.eval_split,
    )


def make_pixel_values(dataset_name: str):
    """standardised image float [B, H, W, C] -> pixel values int32 [B, H, W, C] in 0..255."""
    spec = images.DATASETS[dataset_name]
    mean = np.asarray(spec.mean, np.float32) * 255.0
    std = np.asarray(spec.std, np.float32) * 255.0
    return lambda image: jnp.clip(jnp.round(image * std + mean), 0, 255).astype(jnp.int32)


def nats_per_image(network, values: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
    """values int [B, H, W, C] -> negative log-likelihood [B] in nats."""
    params = network(logistic_mixture.pixels_to_unit(values), dropout_key)
    return -logistic_mixture.log_prob(params, values).sum(axis=(1, 2))


def make_task_fns(dataset_name: str, image_shape: tuple[int, int, int]):
    """(loss_fn, eval_fn) for `common.train.loop.TrainTask`."""
    pixel_values = make_pixel_values(dataset_name)
    num_dims = int(np.prod(image_shape))

    def loss_fn(network, batch: dict, rng: jax.Array):
        nats = nats_per_image(network, pixel_values(batch["image"]), rng)
        loss = nats.mean() / num_dims
        return loss, {"bits_per_dim": logistic_mixture.bits_per_dim(nats.mean(), num_dims)}

    def eval_sums(network, batch: dict) -> dict[str, jax.Array]:
        """Sums over the real images (mask 1); the loop divides by "count"."""
        mask = batch["mask"]
        nats = nats_per_image(network, pixel_values(batch["image"])) * mask
        bits = logistic_mixture.bits_per_dim(nats, num_dims)
        return {"loss": nats.sum() / num_dims, "bits_per_dim": bits.sum(), "count": mask.sum()}

    return loss_fn, eval_sums


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming from workdir), reports test and train bits/dim, then generates from the final checkpoint."""
    generate.sampler_for(config.generate.method)  # a misspelt method fails now, not after the training
    dataset = load_dataset(config)
    network = model.build_model(config, dataset.input_shape, nnx.Rngs(config.seed))
    loss_fn, eval_sums = make_task_fns(config.dataset.name, dataset.input_shape)
    task = loop.TrainTask(
        model=network,
        loss_fn=loss_fn,
        make_train_iterator=dataset.make_train_iterator,
        eval_fn=eval_sums,
        make_eval_iterator=dataset.make_eval_iterator,
    )
    tx = optim.make_optimizer(config.optimizer, config.train.num_steps)
    final = loop.train(task, tx, config.train, workdir, seed=config.seed)
    report = generate.generate_from_checkpoint(config, workdir, dataset.input_shape)
    final["train_eval/bits_per_dim"] = train_split_bits_per_dim(config, workdir, dataset.input_shape)
    return {**final, **{f"generate/{k}": v for k, v in report.items() if isinstance(v, float)}}


def train_split_bits_per_dim(config: ConfigDict, workdir: str, image_shape: tuple[int, int, int]) -> float:
    """Bits/dim of the checkpoint over config.dataset.train_eval_split (eval mode, no dropout): the train number to set
    beside the test one (the loop's train/bits_per_dim is a running mean over the last steps, with dropout)."""
    ds = config.dataset
    train_as_eval = images.load_image_dataset(
        ds.name,
        batch_size=ds.batch_size,
        eval_batch_size=ds.eval_batch_size,
        data_dir=ds.data_dir,
        train_split=ds.train_split,
        eval_split=ds.train_split,
    )
    network, _ = generate.restore_model(config, workdir, image_shape)
    _, eval_sums = make_task_fns(ds.name, image_shape)
    graphdef, state = nnx.split(network)
    step = jax.jit(lambda state, batch: eval_sums(nnx.merge(graphdef, state), batch))
    bits, count = 0.0, 0.0
    for batch in train_as_eval.make_eval_iterator():
        sums = step(state, batch)
        bits, count = bits + float(sums["bits_per_dim"]), count + float(sums["count"])
    return bits / count


def build_for_dry_run(config: ConfigDict):
    input_shape, _ = images.dataset_shapes(config.dataset.name)
    generate.sampler_for(config.generate.method)
    network = nnx.eval_shape(lambda: model.build_model(config, input_shape, nnx.Rngs(config.seed)))
    return network, input_shape
