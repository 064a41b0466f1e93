"""Input pipeline: TFDS data sources, preprocessing, deterministic batches.

Data is read with random access (`builder.as_data_source()`, array_record files), so a batch
is a function of (seed, step) alone: the order of epoch e is a permutation seeded by (seed, e)
and the augmentation of step t is seeded by (seed, t). A run resumed from step t therefore sees
exactly the batches an uninterrupted run sees. With several processes each reads and
preprocesses only its own slice of every batch (`Batches`' `part`), with the augmentation drawn
for the whole batch: the slices together are the batch one process would make.

Datasets: `digits` and `digits_cluttered` (embedded, offline, `bottleneck.data.digits`),
`fashion_mnist` and `mnist` from their IDX files (offline when the files are on disk,
`bottleneck.data.idx`; `data.source_dir` says where), and any other TFDS catalog image
dataset by name (`cifar10`, `imagenette`, ...), which downloads
on first use and needs TensorFlow to decode images: `pip install -e '.[catalog]'`.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import os
import shutil
import socket
import time
import urllib.parse

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from bottleneck.data import idx
from bottleneck.data.digits import Digits, DigitsCluttered
from bottleneck.data.photos import SyntheticPhotos
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError, UserError

EMBEDDED = {
    "digits": Digits, "digits_cluttered": DigitsCluttered, "synthetic_photos": SyntheticPhotos
}
CATALOG_EXTRA = "pip install -e '.[catalog]'  (installs tensorflow-cpu, which TFDS uses to " \
                "download and decode catalog image datasets)"


@dataclasses.dataclass
class Split:
  """A random-access split: `source[i]` is a dict with "image" (HWC uint8) and "label"."""
  name: str
  source: object
  num_classes: int
  label_names: tuple[str, ...] | None = None
  # Which stored examples it holds: (stored split, first, end) ranges, as TFDS reads the slice
  # ("train[50000:]" of 60,000: ("train", 50000, 60000)); empty where unknown.
  ranges: tuple[tuple[str, int, int], ...] = ()

  def __len__(self):
    return len(self.source)

  # The whole split in memory (`in_memory`): every image (n, H, W, C) and label (n,).
  images: np.ndarray | None = dataclasses.field(default=None, repr=False)
  labels: np.ndarray | None = dataclasses.field(default=None, repr=False)

  def read(self, indices) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray]:
    """The images (a list, or one array when the split is in memory) and labels at `indices`."""
    if self.images is not None:
      keys = np.asarray(indices, np.intp)
      return self.images[keys], self.labels[keys]
    keys = [int(i) for i in indices]
    # A batch read where the source has one (TFDS's array_record sources): it reads the
    # examples together, not one file access each.
    try:
      examples = self.source.__getitems__(keys)
    except (AttributeError, TypeError):  # no batch read (`tfds.testing.mock_data`'s sources)
      examples = [self.source[i] for i in keys]
    return ([_decoded(e["image"]) for e in examples],
            np.asarray([e["label"] for e in examples], np.int32))

  def in_memory(self, max_bytes: int, chunk: int = 10_000) -> Split:
    """This split with every example read into memory once, when its images share one shape
    and take at most `max_bytes`; else itself. Batches then index an array instead of reading
    files, for one read of the split in order (what it saves: docs/benchmarks.md, "The training
    loop end to end"). The examples and their order are the same either way."""
    if self.images is not None or max_bytes <= 0 or not len(self):
      return self
    n, first = len(self), np.asarray(self.source[0]["image"])
    if n * first.nbytes > max_bytes:
      logging.info(
          "split %s: %d MiB of images, over data.in_memory_mb; read from disk batch "
          "by batch", self.name, n * first.nbytes >> 20)
      return self
    t, images, labels = time.time(), [], []
    for start in range(0, n, chunk):
      part, part_labels = self.read(range(start, min(start + chunk, n)))
      if any(np.shape(im) != first.shape for im in part):
        return self  # images of several sizes: each is preprocessed on its own anyway
      images.append(np.stack(part))
      labels.append(part_labels)
    logging.info("split %s: %d examples in memory (%d MiB, read in %.1f s)", self.name, n,
                 n * first.nbytes >> 20,
                 time.time() - t)
    return dataclasses.replace(self, images=np.concatenate(images), labels=np.concatenate(labels))


def _decoded(image) -> np.ndarray:
  """An example's image as an HWC uint8 array; encoded bytes (JPEG, PNG: `synthetic_photos`)
  are decoded here, in whichever process reads the batch."""
  if isinstance(image, bytes):
    with Image.open(io.BytesIO(image)) as im:
      out = np.asarray(im if im.mode in ("RGB", "L") else im.convert("RGB"))
    return out[..., None] if out.ndim == 2 else out
  return np.asarray(image)


def _catalog_builder(name: str, data_dir: str | None):
  catalog = tfds.list_builders(with_community_datasets=False)
  if name.split(":")[0].split("/")[0] not in catalog:
    close = difflib.get_close_matches(name, sorted(set(catalog) | set(EMBEDDED)), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"unknown dataset {name!r}: it is neither embedded "
                      f"({', '.join(EMBEDDED)}) nor in the TFDS catalog.{hint}")
  try:
    return tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except ImportError as e:
    raise ConfigError(f"dataset {name!r} needs a package that is not installed ({e}). "
                      f"Install it with: {CATALOG_EXTRA}") from None


def _download_hosts(builder) -> list[str]:
  """The hosts a catalog builder downloads from (its checksums file), [] where unknown."""
  try:
    urls = list(getattr(builder, "url_infos", None) or {})
  except Exception:  # a builder without a checksums file
    urls = []
  return sorted({h for h in (urllib.parse.urlparse(u).hostname for u in urls) if h})


def check_reachable(builder, name: str, timeout: float = 10.0) -> None:
  """ConfigError at once when the dataset's download hosts cannot be reached (no network):
  TFDS would otherwise retry for minutes at "Dl Completed... 0%". Behind a proxy
  (HTTPS_PROXY), which resolves names itself, nothing is checked."""
  if idx.behind_proxy():
    return
  for host in _download_hosts(builder):
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
      raise ConfigError(
          f"dataset {name!r} is not prepared in {builder.data_dir} and cannot be downloaded "
          f"here: {host} is unreachable ({e}). Prepare it on a machine with network access "
          f"(python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}, "
          f"file_format='array_record').download_and_prepare()\") and copy its directory "
          "here, or point the data directory (--config.data_dir, or --data_dir) at where it is "
          "prepared.") from None


# TFDS's own download; `tfds.testing.mock_data` replaces it with one that downloads nothing.
_DOWNLOAD = tfds.core.DatasetBuilder.download_and_prepare


def _prepare(builder, name: str) -> None:
  if (name not in EMBEDDED and name not in idx.BUILDERS
      and tfds.core.DatasetBuilder.download_and_prepare is _DOWNLOAD):
    check_reachable(builder, name)
  try:
    builder.download_and_prepare()
  except UserError:
    raise
  except ImportError as e:
    raise ConfigError(f"dataset {name!r} needs a package that is not installed ({e}). "
                      f"Install it with: {CATALOG_EXTRA}") from None
  except Exception as e:  # offline, disk, quota, ...
    if "tensorflow" in str(e).lower():
      raise ConfigError(f"dataset {name!r} needs TensorFlow: {CATALOG_EXTRA}") from None
    raise ConfigError(f"dataset {name!r} could not be prepared in "
                      f"{builder.data_dir}: {type(e).__name__}: {e}") from None


def _remove_interrupted(dataset_dir: str) -> None:
  """Removes what a preparation that was killed left (TFDS writes into `incomplete.*` beside
  the version directory and renames it when done): tens of MB per try otherwise. Called with
  the preparation lock held, so no live preparation is writing there."""
  for entry in sorted(os.listdir(dataset_dir)):
    path = os.path.join(dataset_dir, entry)
    if entry.startswith("incomplete.") and os.path.isdir(path):
      logging.info("removing %s, left by a preparation that was stopped", path)
      shutil.rmtree(path, ignore_errors=True)


def _builder(name: str, data_dir: str | None, source_dir: str | None = None):
  if name in EMBEDDED:
    return EMBEDDED[name](data_dir=data_dir, file_format="array_record")
  if name in idx.BUILDERS:
    return idx.BUILDERS[name](data_dir=data_dir, file_format="array_record", source_dir=source_dir)
  if source_dir:
    raise ConfigError(f"data.source_dir={source_dir!r} is set, but dataset {name!r} is not "
                      f"read from files; only {', '.join(idx.BUILDERS)} are.")
  return _catalog_builder(name, data_dir)


def class_count(name: str) -> int:
  """The number of classes of dataset `name`, from its builder's description: nothing is
  prepared, downloaded or written."""
  features = _builder(name, None).info.features
  if "label" not in features:
    raise ConfigError(f"dataset {name!r} has features {list(features)}; an image "
                      "classification dataset with 'image' and 'label' is needed.")
  return features["label"].num_classes


def load_splits(name: str, splits: tuple[str, ...] = ("train", "test"), data_dir: str | None = None,
                source_dir: str | None = None) -> dict[str, Split]:
  """The requested splits of dataset `name`, built or downloaded on first use (`source_dir`:
  where the original files of a dataset read from them are, `bottleneck.data.idx`).

  Preparation holds a lock beside the dataset's directory, so that processes starting
  together (a parallel sweep's workers) prepare it once: the others wait, then read it."""
  builder = _builder(name, data_dir, source_dir)
  if not builder.is_prepared():
    lock_dir = os.path.dirname(builder.data_dir)  # <data_dir>/<name>[/<config>]
    with wd.lock(lock_dir, "the dataset directory", wait=True,
                 lock_name=f".{builder.name}.prepare.lock"):
      builder = _builder(name, data_dir, source_dir)  # another process may have prepared it
      if not builder.is_prepared():
        _remove_interrupted(lock_dir)
        _prepare(builder, name)
  elif source_dir:  # prepared before: the original files are not read again
    missing = "" if os.path.isdir(source_dir) else " (it is not a directory)"
    logging.log(logging.WARNING if missing else logging.INFO,
                "dataset %r is prepared in %s already: data.source_dir=%r%s is not read.", name,
                builder.data_dir, source_dir, missing)
  features = builder.info.features
  if "image" not in features or "label" not in features:
    raise ConfigError(f"dataset {name!r} has features {list(features)}; an image "
                      "classification dataset with 'image' and 'label' is needed.")
  available = list(builder.info.splits) or list(splits)
  out = {}
  for split in splits:
    if split.split("[")[0] not in available:
      raise ConfigError(f"dataset {name!r} has no split {split!r}; it has "
                        f"{', '.join(available)}.")
    names = getattr(features["label"], "names", None)
    try:  # TFDS's slicing: "train[:10000]", "train[:10%]"
      source = builder.as_data_source(split=split)
    except (ValueError, AssertionError) as e:
      raise ConfigError(f"dataset {name!r}: split {split!r} is not a split or a slice of one "
                        f"(e.g. 'train[:10000]', 'train[:10%]'): {e}") from None
    try:
      empty = len(source) == 0
    except ValueError:  # a slice that ends before it starts ("train[5:3]")
      empty = True
    if empty:
      raise ConfigError(f"dataset {name!r}: split {split!r} holds no examples.")
    out[split] = Split(split, source, features["label"].num_classes,
                       tuple(names) if names else None, _ranges(split, builder.info.splits))
  return out


def _ranges(split: str, split_infos) -> tuple[tuple[str, int, int], ...]:
  """`Split.ranges` of TFDS split spec `split` ("train[:10%]+test"); empty where the stored
  splits' sizes are not known."""
  try:
    spec = tfds.core.ReadInstruction.from_spec(split).to_absolute(split_infos)
    # An open end is None: the split's start or its end.
    return tuple(
        (r.splitname, r.from_ or 0, split_infos[r.splitname].num_examples if r.to is None else r.to)
        for r in spec)
  except (ValueError, KeyError, AttributeError, AssertionError, TypeError):
    return ()


def _shared(a: Split, b: Split) -> int:
  """How many stored examples splits `a` and `b` both hold (their `ranges`)."""
  shared = 0
  for name, a_start, a_end in a.ranges:
    for other, b_start, b_end in b.ranges:
      if name == other:
        shared += max(0, min(a_end, b_end) - max(a_start, b_start))
  return shared


def check_held_out(splits: dict[str, Split], held_out: str | None, others: tuple[str, ...]) -> None:
  """A ConfigError when split `held_out` (a validation split) shares examples with any of
  `others` (the training and test splits); None: nothing to check."""
  if held_out is None:
    return
  for other in others:
    shared = _shared(splits[held_out], splits[other])
    if shared:
      raise ConfigError(
          f"config: validation_split={held_out!r} shares {shared:,} examples with the "
          f"split {other!r}; hold it out of the training and test images (e.g. "
          "train_split 'train[:55000]', validation_split 'train[55000:]').")


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """Host-side preprocessing to float32 NHWC.

  Each image is resized (if its side differs from `image_size` and `resize` is "resize") or
  zero-padded / cropped (`resize` "pad") and given the model's channel count. "resize" scales
  the shorter side to `resize_to` (default `image_size`) and the longer in proportion, then
  crops `image_size` at the centre, as torchvision's `Resize(resize_to)` and
  `CenterCrop(image_size)` do on a PIL image (bilinear, antialiased; the same rounding): the
  reference evaluation of ImageNet models is resize 256, crop 224. An image larger than
  `image_size` is cropped at the centre, or, in training with `random_crop`, at a random place
  (Zhang et al.: random 28x28 crops of 32x32 CIFAR-10 images, the centre at test time).
  Training images are then padded by `crop_padding` and randomly cropped back, and flipped
  left-right with probability 1/2 if `flip`. Finally (x / 255 - mean) / std, where `mean` and
  `std` are numbers or one per channel (torchvision's ImageNet statistics); with `normalise`
  False that last step is left to the device, and a batch of uint8 images stays uint8 (a
  quarter of the bytes to move): `pixel_table` gives the steps the same numbers.
  """
  image_size: int
  channels: int
  mean: float | tuple[float, ...] = 0.5
  std: float | tuple[float, ...] = 0.5
  resize: str = "pad"
  crop_padding: int = 0
  flip: bool = False
  random_crop: bool = False
  resize_to: int | None = None
  normalise: bool = True

  def __post_init__(self):
    for name in ("mean", "std"):  # from JSON, per-channel statistics arrive as lists
      value = getattr(self, name)
      if isinstance(value, (list, tuple)):
        if len(value) != self.channels:
          raise ConfigError(f"{name}={list(value)} has {len(value)} values; the model takes "
                            f"{self.channels} channels.")
        object.__setattr__(self, name, tuple(float(v) for v in value))

  def _fit(self, image: np.ndarray, crop: np.ndarray | None) -> np.ndarray:
    """`image` at the model's size and channels; `crop`: where a random crop falls, as two
    fractions of the room (training with `random_crop`), else None (the centre)."""
    if image.ndim == 2:
      image = image[..., None]
    s = self.image_size
    h, w = image.shape[:2]
    if (h, w) != (s, s) or self.resize_to:
      if self.resize == "resize":
        short = self.resize_to or s
        size = ((short, int(short * h / w)) if w <= h else (int(short * w / h), short))
        mode = "L" if image.shape[-1] == 1 else "RGB"
        image = np.asarray(
            Image.fromarray(image.squeeze(-1) if mode == "L" else image,
                            mode).resize(size, Image.BILINEAR)).reshape(size[1], size[0], -1)
        h, w = image.shape[:2]
      ph, pw = max(0, s - h), max(0, s - w)
      image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
      h, w = image.shape[:2]
      if crop is not None:
        top, left = (min(int(f * (n - s + 1)), n - s) for f, n in zip(crop, (h, w)))
      else:
        top, left = int(round((h - s) / 2)), int(round((w - s) / 2))
      image = image[top:top + s, left:left + s]
    if image.shape[-1] != self.channels:
      if image.shape[-1] == 1:
        image = np.repeat(image, self.channels, axis=-1)
      else:
        raise ConfigError(f"images have {image.shape[-1]} channels; the model takes "
                          f"{self.channels}.")
    return image

  def _fits_as_is(self, images: list[np.ndarray]) -> bool:
    """Whether every image already has the size and channels `_fit` gives (then it would
    return each unchanged, and the batch is stacked at once)."""
    s = self.image_size
    return not self.resize_to and all(
        im.ndim == 3 and im.shape == (s, s, self.channels) for im in images)

  def draws(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The random choices of a training batch of `n` images, each an array over the images
    (so a part of the batch takes its rows): where a random crop falls (`random_crop`), the
    offsets of the padded crop (`crop_padding`), the flips (`flip`), drawn from `rng` in that
    order."""
    out = {}
    if self.random_crop:
      out["crop"] = rng.random((n, 2))
    if self.crop_padding:
      out["offsets"] = rng.integers(0, 2 * self.crop_padding + 1, size=(n, 2))
    if self.flip:
      out["flip"] = rng.random(n) < 0.5
    return out

  def __call__(self, images: list[np.ndarray], *, train: bool,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """The batch of `images`: in training augmented by the draws of `rng` (`draws`)."""
    return self.apply(images, self.draws(len(images), rng) if train else None)

  def apply(self, images: list[np.ndarray], draws: dict[str, np.ndarray] | None) -> np.ndarray:
    """The batch of `images`, augmented by `draws` (a training batch's, one row per image) or,
    with None, as evaluated."""
    draws = draws or {}
    # Cropped and flipped in the images' own type (uint8: a quarter of float32's bytes to move),
    # then converted: the same numbers as converting first, since both only move values.
    if self._fits_as_is(images):
      x = np.stack(images)
    else:
      crops = draws.get("crop", [None] * len(images))
      x = np.stack([self._fit(im, c) for im, c in zip(images, crops)])
    if "offsets" in draws:
      p, s, offsets = self.crop_padding, self.image_size, draws["offsets"]
      padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
      # Every image's window at once: windows[n, i, j] is padded[n, i:i + s, j:j + s].
      windows = np.lib.stride_tricks.sliding_window_view(padded, (s, s), axis=(1, 2))
      x = windows[np.arange(len(x)), offsets[:, 0], offsets[:, 1]].transpose(0, 2, 3, 1)
    if "flip" in draws:
      flip = draws["flip"]
      x[flip] = x[flip, :, ::-1]
    if not self.normalise and x.dtype == np.uint8:
      return x
    return self._normalised(x.astype(np.float32))

  def _normalised(self, x: np.ndarray) -> np.ndarray:
    x /= 255.0  # in place: the operations of (x / 255 - mean) / std, in its order
    x -= np.asarray(self.mean, np.float32)
    x /= np.asarray(self.std, np.float32)
    return x

  def pixel_table(self) -> np.ndarray:
    """(256, channels) float32: row v is what `apply` makes of a uint8 pixel of value v in each
    channel, computed by the same operations. The steps look a `normalise=False` batch up in it
    (`steps.images`): the numbers of normalising here, bit for bit, on any backend (XLA's own
    arithmetic rounds some quotients differently)."""
    return self._normalised(np.repeat(np.arange(256, dtype=np.float32)[:, None], self.channels, 1))

  @classmethod
  def from_config(cls, config, channels: int, *, normalise: bool = True) -> Preprocess:
    """The preprocessing of a training config (`config.image_size`, `config.data`'s
    preprocessing fields) for a model of `channels` input channels; `normalise` False: as the
    training loop's, uint8 batches left to the device."""
    fields = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in dict(config.data).items() if k in fields}
    return cls(
        **{"image_size": config.image_size, **data, "channels": channels, "normalise": normalise})


def check_batch_size(split: Split, batch_size: int) -> None:
  """A ConfigError when `split` cannot fill one batch of `batch_size`."""
  if batch_size > len(split):
    raise ConfigError(f"batch_size={batch_size} is larger than the {split.name} split "
                      f"({len(split)} examples).")


class Batches:
  """Deterministic training and evaluation batches over a split, or one process's part of each
  (`part`: this process's index and the number of processes; the batch is cut into that many
  equal slices, and only this one's examples are read and preprocessed)."""

  def __init__(self, split: Split, batch_size: int, preprocess: Preprocess, seed: int,
               part: tuple[int, int] = (0, 1)):
    index, count = part
    if batch_size % count or not 0 <= index < count:
      raise ConfigError(f"a batch of {batch_size} cannot be cut into {count} equal parts to "
                        f"take part {index}; use a batch size divisible by {count}.")
    self.split, self.batch_size, self.preprocess, self.seed = split, batch_size, preprocess, seed
    width = batch_size // count
    self.mine = slice(index * width, (index + 1) * width)  # this process's part of a batch
    self.steps_per_epoch = len(split) // batch_size  # the remainder is dropped in training
    self._perm_epoch, self._perm = None, None

  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """The batch of global step `step` (0-based), or this process's part of it: the same
    examples and augmentation (drawn for the whole batch) as the rows of the whole batch.
    Training needs a split of at least one batch (`check_batch_size`, which a trainer calls
    before it starts); evaluation pads the last batch, whatever the split's size."""
    if not self.steps_per_epoch:
      check_batch_size(self.split, self.batch_size)
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng((self.seed, epoch)).permutation(len(self.split))
      self._perm_epoch = epoch
    keys = self._perm[i * self.batch_size:(i + 1) * self.batch_size][self.mine]
    images, labels = self.split.read(keys)
    draws = self.preprocess.draws(self.batch_size,
                                  np.random.default_rng((self.seed, 1_000_003, step)))
    return {
        "image": self.preprocess.apply(images, {k: v[self.mine] for k, v in draws.items()}),
        "label": labels
    }

  @property
  def num_eval_batches(self) -> int:
    return -(-len(self.split) // self.batch_size)

  def eval_batch(self, i: int) -> dict[str, np.ndarray]:
    """Evaluation batch `i` (or this process's part of it): examples i x batch_size on, in
    order; the last batch is padded and masked (`mask` 0)."""
    n, start = len(self.split), i * self.batch_size
    lo, hi = start + self.mine.start, start + self.mine.stop
    idx = np.arange(min(lo, n), min(hi, n))
    pad = (hi - lo) - len(idx)
    mask = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
    if not len(idx):  # a part made only of padding
      shape = (pad, self.preprocess.image_size, self.preprocess.image_size,
               self.preprocess.channels)
      dtype = np.float32 if self.preprocess.normalise else np.uint8  # as the other parts'
      return {"image": np.zeros(shape, dtype), "label": np.zeros(pad, np.int32), "mask": mask}
    images, labels = self.split.read(idx)
    x = self.preprocess(images, train=False)
    return {
        "image": np.pad(x, ((0, pad), (0, 0), (0, 0), (0, 0))), "label": np.pad(labels, (0, pad)),
        "mask": mask
    }

  def eval_batches(self):
    """Every example once, in order (`eval_batch` 0, 1, ...)."""
    for i in range(self.num_eval_batches):
      yield self.eval_batch(i)


def config_splits(config, splits: tuple[str, ...], *, in_memory: bool = True) -> dict[str, Split]:
  """`load_splits` of a training config's dataset, from its data and source directories; with
  `in_memory`, the splits that fit `data.in_memory_mb` in memory (`Split.in_memory`: for code
  that reads them whole, or often; not for a look at a few examples or the class count)."""
  out = load_splits(config.dataset, splits, config.get("data_dir"),
                    config.get("data", {}).get("source_dir"))
  if not in_memory:
    return out
  max_bytes = int(config.get("data", {}).get("in_memory_mb", 0) * 2**20)
  return {name: split.in_memory(max_bytes) for name, split in out.items()}


def log_split_sizes(splits: dict[str, Split]) -> None:
  for name, split in splits.items():
    logging.info("split %s: %d examples, %d classes", name, len(split), split.num_classes)
