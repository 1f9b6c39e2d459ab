"""The paper's model: the common WaveNet (common/nn/wavenet.py) built from the config's model section."""

from flax import nnx
from ml_collections import ConfigDict

from common.nn import wavenet


def build_model(config: ConfigDict, num_classes: int, num_speakers: int, rngs: nnx.Rngs) -> wavenet.WaveNet:
    """num_speakers: the dataset's; conditioning is on when config.model.speaker_features > 0."""
    m = config.model
    conditioned = m.speaker_features > 0
    return wavenet.WaveNet(
        dilations=wavenet.doubling_dilations(m.num_blocks, m.layers_per_block),
        residual_channels=m.residual_channels,
        skip_channels=m.skip_channels or None,
        kernel_size=m.kernel_size,
        activation=m.activation,
        num_classes=num_classes,
        num_speakers=num_speakers if conditioned else 0,
        speaker_features=m.speaker_features if conditioned else 1,
        rngs=rngs,
    )
