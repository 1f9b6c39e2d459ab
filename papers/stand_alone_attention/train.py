"""Training for stand-alone self-attention: image classification with the paper's ResNets."""

import functools

from flax import nnx
from ml_collections import ConfigDict

from common.data import images
from common.train import classification
from papers.stand_alone_attention import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    return classification.train_and_evaluate(config, workdir, model.build_model)


def build_for_dry_run(config: ConfigDict):
    """The model built abstractly (no weights are allocated) for the parameter and FLOP counts.

    FLOPs are counted on the per-pixel ("naive") attention, the k x k window the paper counts; the blockwise
    kernel computes the same function but also the masked-out logits of each block's halo (see the README).
    """
    input_shape, num_classes = images.dataset_shapes(config.dataset.name, config.dataset.get("image_size"))
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.model.implementation = "naive"
    build = functools.partial(model.build_model, config, input_shape, num_classes)
    return nnx.eval_shape(lambda: build(nnx.Rngs(config.seed))), input_shape
