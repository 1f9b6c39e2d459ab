"""A trained Swish checkpoint loads for inference with `restore_weights` alone: no optimizer, no training code."""

import numpy as np
import pytest
from flax import nnx

from common.train import checkpoint, classification
from papers.swish import model, train
from papers.swish.config import get_config


def evaluate(trained, dataset) -> float:
    sums = [classification.eval_sums(trained, batch) for batch in dataset.make_eval_iterator()]
    return float(sum(s["accuracy"] for s in sums) / sum(s["count"] for s in sums))


@pytest.mark.long  # make test covers restore_weights on a trained model in tests/common/train/test_checkpoint.py
def test_trained_swish_checkpoint_restores_without_an_optimizer(tmp_path):
    config = get_config("smoke")
    config.train.num_steps = 4
    final = train.train_and_evaluate(config, str(tmp_path))
    dataset = classification.load_dataset(config)
    fresh = model.build_model(config, dataset.input_shape, dataset.num_classes, nnx.Rngs(config.seed + 1))
    untrained = evaluate(fresh, dataset)
    assert checkpoint.restore_weights(str(tmp_path), fresh) == 4
    np.testing.assert_allclose(evaluate(fresh, dataset), final["eval/accuracy"], rtol=1e-6)
    assert evaluate(fresh, dataset) != untrained
