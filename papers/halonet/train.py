"""Training for HaloNets: image classification with the paper's networks."""

from ml_collections import ConfigDict

from common import app
from common.train import classification
from papers.halonet import model


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, float]:
    return classification.train_and_evaluate(config, workdir, model.build_model)


def build_for_dry_run(config: ConfigDict):
    """The model built abstractly (no weights are allocated) for the parameter and FLOP counts.

    FLOPs are counted on the XLA path (impl="xla"): the Pallas kernel is one opaque call whose traced body is a
    single program. The XLA path's strided layers compute only the kept queries, the work the paper describes.
    """
    return app.abstract_image_model(model.build_model, config, impl="xla")
