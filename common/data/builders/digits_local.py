"""scikit-learn's 1,797 real 8x8 handwritten digits as a tfds dataset: available offline wherever sklearn is.

Split: a permutation of the 1,797 examples drawn with numpy's default_rng(0); its first 1,437 entries index the
train split and the remaining 360 the test split. The split never changes between machines or runs.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_EXAMPLES = 1797
NUM_TRAIN = 1437  # the rest (360) is the test split
SPLIT_SEED = 0


def split_indices() -> dict[str, np.ndarray]:
    """Indices into sklearn's load_digits() of each split: {"train": [1437], "test": [360]}."""
    order = np.random.default_rng(SPLIT_SEED).permutation(NUM_EXAMPLES)
    return {"train": order[:NUM_TRAIN], "test": order[NUM_TRAIN:]}


def load_scaled_digits() -> tuple[np.ndarray, np.ndarray]:
    """[1797, 8, 8] uint8 images (sklearn's 0..16 scaled to 0..255, rounded) and [1797] int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), digits.target.astype(np.int64)


class DigitsLocal(tfds.core.GeneratorBasedBuilder):
    """UCI optical digits as shipped by scikit-learn, 0..16 scaled to 0..255; split by a fixed permutation."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager):
        images, labels = load_scaled_digits()
        return {split: self._generate_examples(images, labels, indices) for split, indices in split_indices().items()}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray):
        """images: uint8 [1797, 8, 8]; labels: [1797]; indices: the examples of one split. Keys: sklearn's index."""
        for index in indices:
            yield int(index), {"image": images[index][:, :, None], "label": int(labels[index])}
