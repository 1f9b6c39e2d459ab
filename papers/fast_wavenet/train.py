"""Training for Fast WaveNet: next-sample prediction on mu-law speech, in bits per sample; then generation.

The loss is the mean negative log-likelihood of each next 8-bit code (natural log, as optimised); metrics report
it in bits per sample (nats / ln 2): 8 bits is a uniform guess over the 256 codes.
"""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from ml_collections import ConfigDict

from common.data import audio
from common.nn import wavenet
from common.registry import lookup
from common.train import loop, optim
from kernels.backend import IMPLEMENTATIONS
from papers.fast_wavenet import generate, model


def load_dataset(config: ConfigDict) -> audio.AudioDataset:
    ds = config.dataset
    return audio.load_audio_dataset(
        ds.name, batch_size=ds.batch_size, segment_length=ds.segment_length, seed=config.seed, data_dir=ds.data_dir
    )


def next_code_nll(wavenet, batch: dict) -> jax.Array:
    """Nats per target [B, T] for batch["audio"] int [B, T+1] (inputs [:, :-1], targets [:, 1:])."""
    codes = batch["audio"]
    speaker = batch["speaker"] if wavenet.num_speakers else None
    logits = wavenet(codes[:, :-1], speaker).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, codes[:, 1:])


def loss_fn(wavenet, batch: dict, rng: jax.Array):
    del rng  # no dropout
    loss = next_code_nll(wavenet, batch).mean()
    return loss, {"bits_per_sample": loss / math.log(2)}


def eval_sums(wavenet, batch: dict) -> dict[str, jax.Array]:
    """Sums over the real targets (mask 1) of an eval batch; the loop divides by "count"."""
    mask = batch["mask"]
    nll = (next_code_nll(wavenet, batch) * mask).sum()
    return {"loss": nll, "bits_per_sample": nll / math.log(2), "count": mask.sum()}


def check_config(config: ConfigDict) -> None:
    """Generation options are read after training: check them before it starts."""
    for method in config.generate.methods:
        lookup(wavenet.GENERATORS, method, "generate.methods entry")
    lookup({name: name for name in IMPLEMENTATIONS}, config.generate.impl, "generate.impl")


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming from workdir), then generates with config.generate.methods from the final checkpoint."""
    dataset = load_dataset(config)
    wavenet = model.build_model(config, dataset.num_classes, dataset.num_speakers, nnx.Rngs(config.seed))
    task = loop.TrainTask(
        model=wavenet,
        loss_fn=loss_fn,
        make_train_iterator=dataset.make_train_iterator,
        eval_fn=eval_sums,
        make_eval_iterator=dataset.make_eval_iterator,
    )
    tx = optim.make_optimizer(config.optimizer, config.train.num_steps)
    final = loop.train(task, tx, config.train, workdir, seed=config.seed)
    report = generate.generate_from_checkpoint(config, workdir, dataset.num_classes, dataset.num_speakers)
    return {**final, **{f"generate/{k}": v for k, v in report.items() if isinstance(v, float)}}


def build_for_dry_run(config: ConfigDict):
    """The model without speaker conditioning (a per-sequence constant, not per-sample work) on one window."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.model.speaker_features = 0
    wavenet = nnx.eval_shape(lambda: model.build_model(config, audio.MU + 1, 1, nnx.Rngs(config.seed)))
    return wavenet, (config.dataset.segment_length,)
