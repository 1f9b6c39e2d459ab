"""Training for stand-alone self-attention: image classification with the paper's ResNets."""

from ml_collections import ConfigDict

from common import app
from common.train import classification
from papers.stand_alone_attention import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    return classification.train_and_evaluate(config, workdir, model.build_model)


def build_for_dry_run(config: ConfigDict):
    """The model built abstractly (no weights are allocated) for the parameter and FLOP counts.

    FLOPs are counted on the per-pixel ("naive") attention, the k x k window the paper counts; the blockwise
    kernel computes the same function but also the masked-out logits of each block's halo (see the README).
    """
    return app.abstract_image_model(model.build_model, config, implementation="naive")
