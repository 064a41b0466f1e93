"""Data: the embedded digits builder, catalog datasets through mock data, preprocessing,
deterministic batches."""

import dataclasses
import importlib
import importlib.util

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from bottleneck.data import digits, pipeline
from bottleneck.util.errors import ConfigError


def test_digits_builder_real_images_stratified_split(digits_dir):
  splits = pipeline.load_splits("digits", data_dir=digits_dir)
  assert (len(splits["train"]), len(splits["test"])) == (1347, 450)
  assert splits["train"].num_classes == 10
  images, labels = splits["test"].read(range(450))
  assert images[0].shape == (8, 8, 1) and images[0].dtype == np.uint8
  assert max(im.max() for im in images) == 255  # 16 scaled to 255
  counts = np.bincount(labels, minlength=10)
  assert counts.min() >= 43 and counts.max() <= 46  # a quarter of each ~180-example class
  from sklearn.datasets import load_digits  # the split holds the very images sklearn ships
  ref = load_digits()
  idx = digits.stratified_split(ref.target)["test"]
  ours = sorted((int(l), im.tobytes()) for l, im in zip(labels, images))  # TFDS shuffles order
  theirs = sorted(
      (int(ref.target[i]), np.round(ref.images[i] * 255 / 16).astype(np.uint8).tobytes())
      for i in idx)
  assert ours == theirs


def test_cluttered_digits_hold_each_digit_whole_among_clutter(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
  canvases, source = digits.clutter(images, seed=3, noise=0.0)
  assert canvases.shape == (20, 24, 24, 1) and canvases.dtype == np.uint8
  assert source.tolist() == [i for i in range(5) for _ in range(4)]
  for canvas, i in zip(canvases, source):  # the digit is somewhere, whole (max with clutter)
    windows = np.lib.stride_tricks.sliding_window_view(canvas[..., 0], (8, 8))
    assert np.any(np.all(windows >= images[i, ..., 0], axis=(-1, -2)))
  again, _ = digits.clutter(images, seed=3, noise=0.0)
  np.testing.assert_array_equal(canvases, again)  # a function of the seed
  splits = pipeline.load_splits("digits_cluttered", data_dir=str(tmp_path))
  assert (len(splits["train"]), len(splits["test"])) == (4 * 1347, 4 * 450)
  image, label = splits["test"].read([0])
  assert image[0].shape == (24, 24, 1) and 0 <= label[0] < 10


def test_catalog_dataset_through_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=24):
    splits = pipeline.load_splits("cifar10", data_dir=str(tmp_path))
    batches = pipeline.Batches(splits["train"], 8,
                               pipeline.Preprocess(28, 3, crop_padding=2, flip=True), seed=1)
    batch = batches.train_batch(0)
  assert batch["image"].shape == (8, 28, 28, 3) and batch["label"].shape == (8,)
  assert splits["train"].num_classes == 10


def test_unknown_dataset_and_split_are_clear_errors(digits_dir):
  with pytest.raises(ConfigError, match=r"unknown dataset 'mnsit'.*Did you mean 'mnist'"):
    pipeline.load_splits("mnsit")
  with pytest.raises(ConfigError, match=r"no split 'validation'; it has train, test"):
    pipeline.load_splits("digits", ("train", "validation"), data_dir=digits_dir)


def test_missing_tensorflow_names_the_extra(tmp_path, monkeypatch):

  def no_tf(*args, **kwargs):
    raise ModuleNotFoundError("No module named 'tensorflow'")

  monkeypatch.setattr(tfds, "builder", no_tf)
  with pytest.raises(ConfigError, match=r"pip install -e '\.\[catalog\]'"):
    pipeline.load_splits("kmnist", data_dir=str(tmp_path))


def test_an_unreachable_download_fails_at_once(tmp_path, monkeypatch):
  """Offline, TFDS used to retry for minutes at "Dl Completed... 0%": the download hosts are
  tried first and an unreachable one is one line naming it and what to do."""

  def unreachable(address, timeout=None):
    raise OSError(f"[Errno -2] Name or service not known: {address[0]}")

  prepared = []
  monkeypatch.setattr(pipeline.socket, "create_connection", unreachable)
  record = lambda self, *a, **k: prepared.append(self.name)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", record)
  monkeypatch.setattr(pipeline, "_DOWNLOAD", record)  # TFDS's own, as far as the check knows
  for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
    monkeypatch.delenv(var, raising=False)
  with pytest.raises(
      ConfigError, match=r"dataset 'cifar10' is not prepared in .* cannot be "
      r"downloaded here: www.cs.toronto.edu is unreachable.*"
      r"--data_dir"):
    pipeline.load_splits("cifar10", data_dir=str(tmp_path))
  assert not prepared  # refused before TFDS started
  monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # a proxy resolves names itself
  with pytest.raises(Exception):  # noqa: B017  # whatever TFDS raises after the stub; not ours
    pipeline.load_splits("cifar10", data_dir=str(tmp_path))
  assert prepared == ["cifar10"]


def test_batches_are_a_function_of_seed_and_step(digits_dir):
  split = pipeline.load_splits("digits", data_dir=digits_dir)["train"]
  pre = pipeline.Preprocess(8, 1, crop_padding=1)
  a = pipeline.Batches(split, 64, pre, seed=0)
  b = pipeline.Batches(split, 64, pre, seed=0)
  for step in (0, 25, 21, 3):  # any order: no hidden iterator state
    np.testing.assert_array_equal(a.train_batch(step)["image"], b.train_batch(step)["image"])
  c = pipeline.Batches(split, 64, pre, seed=1)
  assert not np.array_equal(a.train_batch(0)["label"], c.train_batch(0)["label"])
  # Each epoch is a new permutation of the whole split.
  spe = a.steps_per_epoch
  assert spe == 1347 // 64
  epoch0 = np.concatenate([a.train_batch(s)["label"] for s in range(spe)])
  epoch1 = np.concatenate([a.train_batch(spe + s)["label"] for s in range(spe)])
  assert not np.array_equal(epoch0, epoch1)
  _, labels = split.read(range(len(split)))
  full = np.bincount(labels, minlength=10)
  for epoch in (epoch0, epoch1):  # each example at most once; only the 3-example remainder left
    missing = full - np.bincount(epoch, minlength=10)
    assert missing.min() >= 0 and missing.sum() == 1347 - 1344


class _Counted(list):
  """A list source that records which examples were read."""

  def __init__(self, examples):
    super().__init__(examples)
    self.read = []

  def __getitem__(self, i):
    self.read.append(i)
    return super().__getitem__(i)


def test_each_process_reads_only_its_part_and_the_parts_are_the_batch():
  """Three processes' parts of every batch, side by side, are the batch one process makes, bit
  for bit (images of several sizes, resized, randomly cropped, padded and cropped, flipped);
  each part reads only its own examples; an evaluation part past the split's end is padding."""
  rng = np.random.default_rng(0)
  examples = [{
      "image": rng.integers(0, 256, (int(rng.integers(7, 12)), int(rng.integers(7, 12)), 1),
                            dtype=np.uint8), "label": i % 10
  } for i in range(20)]
  pre = pipeline.Preprocess(6, 1, resize="resize", resize_to=8, random_crop=True, crop_padding=1,
                            flip=True)
  whole = pipeline.Batches(pipeline.Split("train", examples, 10), 9, pre, seed=4)
  sources = [_Counted(examples) for _ in range(3)]
  parts = [
      pipeline.Batches(pipeline.Split("train", src, 10), 9, pre, 4, (i, 3))
      for i, src in enumerate(sources)
  ]
  for step in (0, 1, 2, 5):
    batch = whole.train_batch(step)
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([p.train_batch(step)[key] for p in parts]),
                                    batch[key])
  perm = np.random.default_rng((4, 2)).permutation(20)  # step 5: epoch 2's second batch
  assert sources[1].read[-3:] == [int(k) for k in perm[9 + 3:9 + 6]]
  for i in range(whole.num_eval_batches):
    batch = whole.eval_batch(i)
    for key in ("image", "label", "mask"):
      np.testing.assert_array_equal(np.concatenate([p.eval_batch(i)[key] for p in parts]),
                                    batch[key])
  assert [p.eval_batch(2)["mask"].sum() for p in parts] == [2, 0, 0]
  # Left uint8 for the device (the training loop's batches), a part made only of padding is
  # uint8 too: the processes' parts become one array.
  for p in parts:
    p.preprocess = dataclasses.replace(pre, normalise=False)
  assert {p.eval_batch(2)["image"].dtype for p in parts} == {np.dtype(np.uint8)}
  with pytest.raises(ConfigError, match="a batch of 9 cannot be cut into 2 equal parts"):
    pipeline.Batches(pipeline.Split("train", examples, 10), 9, pre, 4, (0, 2))


def test_a_split_in_memory_gives_the_batches_read_from_disk(digits_dir):
  split = pipeline.load_splits("digits", data_dir=digits_dir)["train"]
  nbytes = len(split) * 8 * 8  # 1,347 8x8x1 uint8 images
  kept = split.in_memory(nbytes, chunk=500)  # three reads, the last one short
  assert kept.images.shape == (1347, 8, 8, 1) and kept.labels.dtype == np.int32
  pre = pipeline.Preprocess(8, 1, crop_padding=1, flip=True)
  disk, memory = pipeline.Batches(split, 64, pre, 3), pipeline.Batches(kept, 64, pre, 3)
  for step in (0, 1, 40):  # the same examples, order and augmentation
    a, b = disk.train_batch(step), memory.train_batch(step)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  for a, b in zip(disk.eval_batches(), memory.eval_batches()):
    np.testing.assert_array_equal(a["image"], b["image"])
  # Over the limit, or a limit of 0: read from disk, batch by batch.
  assert split.in_memory(nbytes - 1).images is None and split.in_memory(0).images is None
  # Images of several sizes are not stacked.
  mixed = pipeline.Split("mixed",
                         [{"image": np.zeros((s, s, 1), np.uint8), "label": 0} for s in (8, 8, 9)],
                         10)
  assert mixed.in_memory(10**6).images is None


def test_training_configs_keep_small_splits_in_memory(digits_dir):
  from tests.tiny_train_config import get_config
  config = get_config(data_dir=digits_dir)
  assert config.data.in_memory_mb > 0
  assert pipeline.config_splits(config, ("test",))["test"].images.shape == (450, 8, 8, 1)
  # A look at the class count or a few examples reads nothing whole.
  assert pipeline.config_splits(config, ("test",), in_memory=False)["test"].images is None
  config.data.in_memory_mb = 0
  assert pipeline.config_splits(config, ("test",))["test"].images is None


def test_a_held_out_split_sharing_examples_is_refused(digits_dir):
  """Slices of one stored split compared by the examples TFDS reads for them (percentages and
  negative ends included); disjoint slices and other splits pass."""
  names = ("train[:50%]", "train[-10%:]", "train[40%:]", "test", "test[:10]")
  splits = pipeline.load_splits("digits", names, data_dir=digits_dir)
  n = len(pipeline.load_splits("digits", ("train",), data_dir=digits_dir)["train"])
  assert splits["train[-10%:]"].ranges == (("train", n - len(splits["train[-10%:]"]), n),)
  pipeline.check_held_out(splits, "train[-10%:]", ("train[:50%]", "test"))
  pipeline.check_held_out(splits, None, ("train[:50%]",))
  overlap = len(splits["train[:50%]"]) - splits["train[40%:]"].ranges[0][1]
  with pytest.raises(ConfigError, match=f"shares {overlap} examples with the split 'train\\[:50%"):
    pipeline.check_held_out(splits, "train[40%:]", ("train[:50%]", "test"))
  with pytest.raises(ConfigError, match="'test\\[:10\\]' shares 10 examples with the split 'test'"):
    pipeline.check_held_out(splits, "test[:10]", ("train[:50%]", "test"))


def test_eval_batches_cover_every_example_once(digits_dir):
  split = pipeline.load_splits("digits", data_dir=digits_dir)["test"]
  batches = list(pipeline.Batches(split, 64, pipeline.Preprocess(8, 1), 0).eval_batches())
  assert sum(b["mask"].sum() for b in batches) == 450
  assert all(b["image"].shape == (64, 8, 8, 1) for b in batches)
  _, labels = split.read(range(450))
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches])[:450], labels)


def test_preprocess_pad_resize_channels_crop_flip():
  img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
  padded = pipeline.Preprocess(8, 3, mean=0.0, std=1.0)([img], train=False)
  assert padded.shape == (1, 8, 8, 3)
  # Elementwise IEEE arithmetic rounds the same on every CPU: x / 255 * 255 is x to within two
  # roundings of values <= 35 (< 1e-5); 1e-4 leaves a margin of ten.
  np.testing.assert_allclose(padded[0, 2:6, 2:6, 0] * 255, img[..., 0], atol=1e-4)
  assert padded[0, 0, 0, 0] == 0
  resized = pipeline.Preprocess(8, 1, resize="resize")([np.zeros((16, 32, 1), np.uint8)],
                                                       train=False)
  assert resized.shape == (1, 8, 8, 1)
  pre = pipeline.Preprocess(4, 1, mean=0.0, std=1.0, crop_padding=1, flip=True)
  outs = {pre([img], train=True, rng=np.random.default_rng(s)).tobytes() for s in range(20)}
  assert len(outs) > 1  # random crops and flips differ
  np.testing.assert_allclose(pre([img], train=False)[0, ..., 0] * 255, img[..., 0], atol=1e-4)
  big = np.arange(36, dtype=np.uint8).reshape(6, 6, 1)
  crops = pipeline.Preprocess(4, 1, mean=0.0, std=1.0, random_crop=True)
  np.testing.assert_allclose(
      crops([big], train=False)[0, ..., 0] * 255, big[1:5, 1:5, 0],
      atol=1e-4)  # the centre at test time
  seen = {crops([big], train=True, rng=np.random.default_rng(s))[0, 0, 0, 0] for s in range(30)}
  assert len(seen) > 3  # random places in training
  with pytest.raises(ConfigError, match="images have 3 channels; the model takes 1"):
    pipeline.Preprocess(4, 1)([np.zeros((4, 4, 3), np.uint8)], train=False)


def test_the_whole_batch_path_is_the_image_by_image_one():
  """Images already of the model's size are stacked and cropped as one array: the same batch,
  bit for bit, as fitting and cropping them one at a time (the same random draws)."""
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (6, 6, 1), dtype=np.uint8) for _ in range(9)]
  pre = pipeline.Preprocess(6, 1, crop_padding=2, flip=True)
  fast = pre(images, train=True, rng=np.random.default_rng(5))
  draws = np.random.default_rng(5)
  x = np.stack([pre._fit(im, draws) for im in images]).astype(np.float32)
  padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  offsets = draws.integers(0, 5, size=(9, 2))
  x = np.stack([im[i:i + 6, j:j + 6] for im, (i, j) in zip(padded, offsets)])
  flip = draws.random(9) < 0.5
  x[flip] = x[flip, :, ::-1]
  np.testing.assert_array_equal(fast, (x / 255.0 - np.float32(0.5)) / np.float32(0.5))
  assert 0 < flip.sum() < 9 and len({tuple(o) for o in offsets}) > 1


def test_a_split_smaller_than_a_batch_evaluates_padded_and_does_not_train(digits_dir):
  """Evaluation pads its last batch, so a split smaller than a batch is one padded batch (it
  was refused, naming `batch_size`, when a test or validation split was smaller than
  `eval_batch_size`); training needs whole batches."""
  split = pipeline.load_splits("digits", data_dir=digits_dir, splits=("test[:20]",))["test[:20]"]
  batches = pipeline.Batches(split, 64, pipeline.Preprocess(8, 1), 0)
  [batch] = list(batches.eval_batches())
  assert batch["image"].shape[0] == 64 and batch["mask"].sum() == 20
  np.testing.assert_array_equal(batch["label"][:20], split.read(np.arange(20))[1])
  with pytest.raises(ConfigError, match=r"batch_size=64 is larger than the test\[:20\] split"):
    batches.train_batch(0)


def test_a_slice_that_ends_before_it_starts_holds_no_examples(digits_dir):
  with pytest.raises(ConfigError, match=r"split 'train\[5:3\]' holds no examples"):
    pipeline.load_splits("digits", data_dir=digits_dir, splits=("train[5:3]",))


def test_first_use_by_two_processes_at_once_prepares_once(tmp_path):
  """Two workers of a parallel sweep on a fresh data directory (flock excludes open files,
  not processes, so threads exercise the same lock)."""
  import concurrent.futures
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    splits = list(
        pool.map(lambda _: pipeline.load_splits("digits", data_dir=str(tmp_path)), range(3)))
  assert [len(s["train"]) for s in splits] == [1347] * 3


def test_what_a_stopped_preparation_left_is_removed_by_the_next(tmp_path):
  """A preparation killed mid-write leaves TFDS's `incomplete.*` directory (38 MB for
  Fashion-MNIST); the next preparation, holding the lock, removes it and prepares afresh."""
  left = tmp_path / "digits" / "incomplete.AB12CD_1.0.0"
  left.mkdir(parents=True)
  (left / "digits-train.array_record-00000-of-00001").write_bytes(b"half written")
  splits = pipeline.load_splits("digits", data_dir=str(tmp_path))
  assert len(splits["train"]) == 1347
  assert sorted(
      p.name for p in (tmp_path / "digits").iterdir() if not p.name.startswith(".")) == ["1.0.0"]


def test_reference_preprocessing_is_torchvisions():
  """resize 256 / centre crop 224 / ImageNet statistics, as torchvision's transforms do it on a
  PIL image, for oblong, tall, square and barely larger images."""
  torch = pytest.importorskip("torch")
  if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed (the torch extra)")
  from bottleneck.util import compat
  compat.torchvision_models()
  t = importlib.import_module("torchvision.transforms")
  mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  reference = t.Compose([t.Resize(256), t.CenterCrop(224), t.ToTensor(), t.Normalize(mean, std)])
  ours = pipeline.Preprocess(224, 3, mean=mean, std=std, resize="resize", resize_to=256)
  rng = np.random.default_rng(0)
  for shape in [(427, 640), (500, 375), (300, 300), (224, 251), (257, 999)]:
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = reference(Image.fromarray(image)).permute(1, 2, 0).numpy()
    got = ours([image], train=False)[0]
    assert got.shape == expected.shape == (224, 224, 3)
    # Both resize with PIL to whole uint8 pixels; (x / 255 - mean) / std then rounds three
    # times on values <= 2.7 (< 1e-6 each).
    np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=str(shape))
  del torch
