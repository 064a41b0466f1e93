"""TFDS builder for the handwritten digits that ship with scikit-learn: the offline dataset.

1,797 real 8x8 grayscale images of the digits 0-9 (UCI "optdigits" test set), stored as
uint8 (the original 0..16 intensities scaled to 0..255) in TFDS's `array_record` format and read
with `as_data_source()`: no TensorFlow and no network needed. The train/test split is a fixed
stratified split: 25% of each class, chosen with seed 0, is the test split.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

TEST_FRACTION = 0.25
SPLIT_SEED = 0


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION,
                     seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
  """Indices of the train and test splits: `test_fraction` of every class goes to test."""
  rng = np.random.default_rng(seed)
  test = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    test.extend(rng.choice(idx, size=round(len(idx) * test_fraction), replace=False))
  test = np.sort(np.asarray(test))
  return {"train": np.setdiff1d(np.arange(len(labels)), test), "test": test}


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 handwritten digits as a TFDS dataset."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the data ships with scikit-learn
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    splits = stratified_split(digits.target)
    return {name: self._generate_examples(images[idx], digits.target[idx], idx)
            for name, idx in splits.items()}

  def _generate_examples(self, images, labels, ids):
    for image, label, i in zip(images, labels, ids):
      yield int(i), {"image": image, "label": int(label)}
