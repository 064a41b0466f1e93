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
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    splits = stratified_split(digits.target)
    return {
        name: self._generate_examples(images[idx], digits.target[idx], idx)
        for name, idx in splits.items()
    }

  def _generate_examples(self, images, labels, ids):
    for image, label, i in zip(images, labels, ids):
      yield int(i), {"image": image, "label": int(label)}


CANVAS = 24
COPIES = 4
FRAGMENTS = 4
FRAGMENT = 4
NOISE = 0.1


def clutter(images: np.ndarray, seed: int, copies: int = COPIES, canvas: int = CANVAS,
            fragments: int = FRAGMENTS, fragment: int = FRAGMENT,
            noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
  """(canvases, source index per canvas): each 8x8 image placed `copies` times at random on a
  `canvas` x `canvas` field with `fragments` random `fragment` x `fragment` pieces of other
  images of the same split (as "cluttered MNIST" is built) and Gaussian noise of standard
  deviation `noise` (of full scale), clipped to [0, 255]. A function of `seed` alone."""
  rng = np.random.default_rng(seed)
  n, side = len(images), images.shape[1]
  out = np.zeros((n * copies, canvas, canvas, 1), np.float32)
  source = np.repeat(np.arange(n), copies)
  for k, i in enumerate(source):
    field = out[k, ..., 0]
    for _ in range(fragments):
      other = images[rng.integers(n), ..., 0]
      r, c = rng.integers(0, side - fragment + 1, size=2)
      y, x = rng.integers(0, canvas - fragment + 1, size=2)
      field[y:y + fragment, x:x + fragment] = np.maximum(field[y:y + fragment, x:x + fragment],
                                                         other[r:r + fragment, c:c + fragment])
    y, x = rng.integers(0, canvas - side + 1, size=2)
    field[y:y + side, x:x + side] = np.maximum(field[y:y + side, x:x + side], images[i, ..., 0])
    field += rng.normal(0, noise * 255, size=field.shape)
  return np.clip(np.round(out), 0, 255).astype(np.uint8), source


class DigitsCluttered(tfds.core.GeneratorBasedBuilder):
  """The digits, harder: each one placed 4 times at random on a 24x24 field among fragments
  of other digits and noise (`clutter`). Same train/test split of the source images as
  `digits` (so no test digit is seen in training, not even cluttered), 5,388 / 1,800
  examples. Offline, generated on first use."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(CANVAS, CANVAS, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    splits = stratified_split(digits.target)
    return {
        name: self._generate_examples(images[idx], digits.target[idx], seed)
        for seed, (name, idx) in enumerate(splits.items())
    }

  def _generate_examples(self, images, labels, seed):
    canvases, source = clutter(images, seed)
    for k, (canvas, i) in enumerate(zip(canvases, source)):
      yield k, {"image": canvas, "label": int(labels[i])}
