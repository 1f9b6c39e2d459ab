"""Training for low-rank local connectivity: image classification with the paper's small network."""

from ml_collections import ConfigDict

from common import app
from common.train import classification
from papers.low_rank_local import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    return classification.train_and_evaluate(config, workdir, model.build_model)


def build_for_dry_run(config: ConfigDict):
    """The model built abstractly (the dense LC network holds ~40M weights) for the parameter and FLOP counts."""
    return app.abstract_image_model(model.build_model, config)
