"""scikit-learn's 1,797 real 8x8 handwritten digits as a tfds dataset: always available offline."""

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN = 1437  # the rest (360) is the test split


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
        order = np.random.default_rng(0).permutation(1797)
        return {"train": self._generate_examples(order[:NUM_TRAIN]), "test": self._generate_examples(order[NUM_TRAIN:])}

    def _generate_examples(self, indices: np.ndarray):
        images, labels = load_scaled_digits()
        for index in indices:
            yield int(index), {"image": images[index][:, :, None], "label": int(labels[index])}


def load_scaled_digits() -> tuple[np.ndarray, np.ndarray]:
    """[1797, 8, 8] uint8 images (x * 255 / 16, rounded) and [1797] labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), digits.target.astype(np.int64)
