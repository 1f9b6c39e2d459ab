"""Training for backprop evolution: image classification whose layers follow `config.model.rule` backward.

Besides the eval split's metrics (the test split in the re-training configs), a run scores the trained weights on
`config.dataset.validation_split` when one is set (the examples the search's children were scored on), so the
README can report validation and test accuracy of the same run.
"""

import jax
from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.train import checkpoint, classification
from papers.backprop_evolution import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    metrics = classification.train_and_evaluate(config, workdir, model.build_model)
    split = config.dataset.get("validation_split")
    if split:
        metrics = {**metrics, "validation/accuracy": split_accuracy(config, workdir, split)}
    return metrics


def split_accuracy(config: ConfigDict, workdir: str, split: str) -> float:
    """Top-1 accuracy on `split` of the weights last saved in `workdir`."""
    split_config = ConfigDict(config.to_dict())
    split_config.dataset.eval_split = split
    dataset = classification.load_dataset(split_config)
    network = model.build_model(config, dataset.input_shape, dataset.num_classes, nnx.Rngs(config.seed))
    checkpoint.restore_weights(workdir, network)
    graphdef, state = nnx.split(network)
    sums = jax.jit(lambda state, batch: classification.eval_sums(nnx.merge(graphdef, state), batch))
    correct = count = 0.0
    for batch in dataset.make_eval_iterator():
        batch_sums = sums(state, batch)
        correct += float(batch_sums["accuracy"])
        count += float(batch_sums["count"])
    return correct / count


def build_for_dry_run(config: ConfigDict):
    input_shape, num_classes = images.dataset_shapes(config.dataset.name, config.dataset.get("image_size"))
    return model.build_model(config, input_shape, num_classes, nnx.Rngs(config.seed)), input_shape
