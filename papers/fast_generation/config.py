"""Configs for "Fast Generation for Convolutional Autoregressive Models" (Ramachandran et al. 2017): train a
PixelCNN++ (Salimans et al. 2017), report train/test bits per dimension, then generate a grid of samples.

Run:  python -m papers.fast_generation.main --config=papers/fast_generation/config.py:<variant>
      (trains, evaluates, then writes <workdir>/samples/cached.png and generation.json)
      python -m papers.fast_generation.generate --workdir=DIR   (generates again from the checkpoint in DIR)
Variants:
  default  a small PixelCNN++ (nr_resnet 1, 16 filters, 5 logistic mixtures, no dropout) on the offline
           Fashion-MNIST (28 x 28 grey) for 600 steps of batch 16 with Adam, train bits/dim on train[:10000],
           then 4 images drawn with the cached generator; its measured time, bits/dim and samples are in
           papers/fast_generation/README.md.
  smoke    nr_resnet 1, 8 filters, 2 mixtures on the offline 8 x 8 digits for 20 steps, a 2-image grid:
           a few minutes, nearly all of it compilation; what the tests run.
  cifar10  the paper's model (nr_resnet 5, 160 filters, 10 mixtures, dropout 0.5, Adam 1e-3 decayed by 0.999995
           per step, weight EMA 0.9995; 2.92 bits/dim in the PixelCNN++ paper) on tfds cifar10, for users who
           have it prepared and an accelerator: days of training, not a CPU job.
Model fields: nr_resnet (gated resnet blocks per scale), nr_filters, nr_logistic_mix, dropout.
Generation fields: batch_size (images per grid), seed, ema (sample from the EMA weights; needs train.ema_decay),
  method: "cached" (fast generation, the default) or "naive" (a full forward pass per pixel); same seed, same images.
"""

from ml_collections import ConfigDict

from common.registry import lookup
from configs import presets


def _default() -> ConfigDict:
    dataset = presets.dataset_preset("fashion_mnist_local")
    dataset.update(batch_size=16, eval_batch_size=500)
    # The train-split bits/dim are measured on this part of it (the whole 60k would cost more than the training).
    dataset.train_eval_split = "train[:10000]"
    train = presets.train_loop(num_steps=600, log_every=25, checkpoint_every=200)
    return ConfigDict(
        {
            "seed": 0,
            "dataset": dataset,
            "model": {"nr_resnet": 1, "nr_filters": 16, "nr_logistic_mix": 5, "dropout": 0.0},
            "optimizer": {"name": "adam", "learning_rate": 2e-3, "schedule": "cosine", "warmup_steps": 50},
            "train": train,
            "generate": {"batch_size": 4, "seed": 0, "ema": False, "method": "cached"},
        }
    )


def _smoke() -> ConfigDict:
    config = _default()
    config.dataset = presets.dataset_preset("digits_local")
    config.dataset.update(batch_size=16, eval_batch_size=40, train_eval_split="train")
    config.model.update(nr_filters=8, nr_logistic_mix=2)
    config.optimizer.update(learning_rate=5e-3, warmup_steps=2)
    config.train.update(num_steps=20, log_every=5, checkpoint_every=10)
    config.generate.batch_size = 2
    return config


def _cifar10() -> ConfigDict:
    config = _default()
    config.dataset = presets.dataset_preset("cifar10")
    config.dataset.update(batch_size=64, eval_batch_size=500, augment="none", train_eval_split="train")
    config.model.update(nr_resnet=5, nr_filters=160, nr_logistic_mix=10, dropout=0.5)
    # The reference decays lr 1e-3 by 0.999995 per step (to 0.082x after 500k steps).
    config.optimizer = ConfigDict(
        {"name": "adam", "learning_rate": 1e-3, "schedule": "exponential", "decay_rate": 0.999995, "warmup_steps": 0}
    )
    config.train.update(num_steps=500_000, log_every=500, checkpoint_every=5_000, ema_decay=0.9995)
    config.generate.update(batch_size=16, ema=True)
    return config


VARIANTS = {"default": _default, "smoke": _smoke, "cifar10": _cifar10}


def get_config(variant: str = "default") -> ConfigDict:
    return lookup(VARIANTS, variant, "fast_generation config variant")()
