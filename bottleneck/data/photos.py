"""TFDS builder for `synthetic_photos`: JPEG-encoded colour images of photo size (about 500x375,
as Imagenette's), generated on the spot, for measuring and testing the input pipeline at 224
pixels offline. Ten classes, each a colour cast over smooth random shapes; not a benchmark of
accuracy. Stored as encoded bytes in TFDS's `array_record` files and decoded by
`pipeline.Split.read` (PIL), in the pipeline's workers when there are some (docs/training.md).
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

NUM_CLASSES = 10
SIZES = {"train": 256, "validation": 64}
SEED = 0


def photo(rng: np.random.Generator, label: int) -> bytes:
  """One JPEG (quality 90) of 400-500 x 300-375 pixels: a coarse random field, smoothly
  enlarged, tinted by the class, with a little pixel noise."""
  width, height = int(rng.integers(400, 501)), int(rng.integers(300, 376))
  coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
  image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
  tint = np.asarray([(label * 97) % 256, (label * 53) % 256, (label * 29) % 256], np.float32)
  image = 0.6 * image + 0.4 * tint + rng.normal(0, 6, image.shape)
  out = io.BytesIO()
  Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
  return out.getvalue()


class SyntheticPhotos(tfds.core.GeneratorBasedBuilder):
  """JPEG photos of about 500x375 pixels in ten classes, generated from a seed."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # Encoded bytes: TFDS's Image feature needs TensorFlow to encode and decode.
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # generated
    return {
        name: self._generate_examples(name, n, seed)
        for seed, (name, n) in enumerate(SIZES.items(), SEED)
    }

  def _generate_examples(self, name, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
      label = i % NUM_CLASSES
      yield f"{name}{i}", {"image": photo(rng, label), "label": label}
