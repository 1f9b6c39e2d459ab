"""The paper's model: the common PixelCNN++ (common/nn/pixelcnn.py) built from the config's model section."""

from flax import nnx
from ml_collections import ConfigDict

from common.nn import pixelcnn


def build_model(config: ConfigDict, image_shape: tuple[int, int, int], rngs: nnx.Rngs) -> pixelcnn.PixelCNNPlusPlus:
    """image_shape: (H, W, C) of the dataset's images."""
    m = config.model
    return pixelcnn.PixelCNNPlusPlus(
        image_shape=tuple(image_shape),
        nr_resnet=m.nr_resnet,
        nr_filters=m.nr_filters,
        nr_logistic_mix=m.nr_logistic_mix,
        dropout=m.dropout,
        rngs=rngs,
    )
