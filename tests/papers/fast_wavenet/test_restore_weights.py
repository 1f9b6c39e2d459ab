"""A trained Fast WaveNet checkpoint loads for generation with `restore_weights` alone (no optimizer)."""

import numpy as np
import pytest
from flax import nnx

from common.train import checkpoint
from papers.fast_wavenet import model, train
from papers.fast_wavenet.config import get_config


def bits_per_sample(wavenet, dataset) -> float:
    sums = [train.eval_sums(wavenet, batch) for batch in dataset.make_eval_iterator()]
    return float(sum(s["bits_per_sample"] for s in sums) / sum(s["count"] for s in sums))


@pytest.mark.long
def test_trained_wavenet_checkpoint_restores_without_an_optimizer(tmp_path):
    config = get_config("smoke")
    config.train.update(num_steps=4, checkpoint_every=4)
    config.generate.methods = ("fast",)
    config.generate.num_samples = 8
    final = train.train_and_evaluate(config, str(tmp_path))
    dataset = train.load_dataset(config)
    fresh = model.build_model(config, dataset.num_classes, dataset.num_speakers, nnx.Rngs(config.seed + 1))
    untrained = bits_per_sample(fresh, dataset)
    assert checkpoint.restore_weights(str(tmp_path), fresh) == 4
    np.testing.assert_allclose(bits_per_sample(fresh, dataset), final["eval/bits_per_sample"], rtol=1e-5)
    assert abs(bits_per_sample(fresh, dataset) - untrained) > 1e-4
