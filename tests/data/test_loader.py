"""`bottleneck.data.loader`: batches made ahead in worker processes are the batches made in the
training process, in step order."""

import numpy as np
import pytest

from bottleneck.data import loader, pipeline


def _equal(a: list[dict], b: list[dict]) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)
      assert x[k].dtype == y[k].dtype


def test_workers_make_the_batches_of_the_training_process(digits_dir):
  """Two runs stacked (seeds trained together), augmented (random crop, flip), steps 5 to 12
  (an epoch's end and the next permutation): the same arrays from 2 workers as in-process."""
  split = pipeline.load_splits("digits", ("train",), digits_dir)["train"]
  pre = pipeline.Preprocess(image_size=10, channels=1, crop_padding=2, flip=True)
  make = loader.StepBatches([pipeline.Batches(split, 200, pre, seed) for seed in (0, 1)])
  assert make(5)["image"].shape == (2, 200, 10, 10, 1)
  ahead = loader.feed(make, 5, 13, workers=2)
  made = list(ahead)
  ahead.close()
  _equal(made, [make(s) for s in range(5, 13)])
  assert not np.array_equal(made[0]["image"], made[1]["image"])
  # Evaluation batches, in order, the last one padded and masked: pass after pass from the same
  # workers, and from new ones after a pass left midway.
  batches = pipeline.Batches(split, 500, pre, 0)
  expected = list(batches.eval_batches())
  ahead = loader.Ahead(batches, 2)
  _equal(list(ahead.eval_batches()), expected)
  workers = ahead._feed
  _equal(list(ahead.eval_batches()), expected)
  assert ahead._feed is workers
  next(ahead.eval_batches())  # an evaluation that failed after its first batch
  _equal(list(ahead.eval_batches()), expected)
  assert ahead._feed is not workers
  ahead.close()
  assert ahead._feed is None and batches.num_eval_batches == 3 and len(split) == 1347


def test_encoded_photos_are_decoded_by_the_workers_alike(tmp_path):
  """`synthetic_photos` (JPEG bytes of about 500x375, read from its array_record files in
  each worker) resized and cropped to 64: the same batches from 1 worker as in-process."""
  split = pipeline.load_splits("synthetic_photos", ("validation",), str(tmp_path))["validation"]
  images, labels = split.read([0, 1])
  assert images[0].dtype == np.uint8 and images[0].shape[2] == 3
  assert 300 <= images[0].shape[0] <= 375 and 400 <= images[0].shape[1] <= 500
  assert split.num_classes == 10 and set(labels.tolist()) <= set(range(10))
  pre = pipeline.Preprocess(image_size=64, channels=3, resize="resize", crop_padding=4, flip=True)
  make = loader.StepBatches([pipeline.Batches(split, 16, pre, 0)])
  ahead = loader.feed(make, 0, 3, workers=1)
  _equal(list(ahead), [make(s) for s in range(3)])


@pytest.mark.parametrize("platform, cores, workers", [("cpu", 2, 0), ("cpu", 16, 4), ("cpu", 64, 8),
                                                      ("gpu", 2, 1), ("gpu", 16, 15),
                                                      ("tpu", 96, 16)])
def test_default_workers(platform, cores, workers):
  assert loader.default_workers(platform, cores) == workers
  assert loader.default_workers(platform, cores, in_memory=True) == 0  # batches from memory


def test_a_worker_that_dies_leaves_the_batches_to_this_process(digits_dir, monkeypatch):
  """A worker killed mid-feed (SIGKILL, as the out-of-memory killer does): the feed goes on in
  this process from the batch the worker owed, with the same arrays, and warns."""
  import multiprocessing
  import os
  import signal
  split = pipeline.load_splits("digits", ("train",), digits_dir)["train"]
  make = loader.StepBatches(
      [pipeline.Batches(split, 100, pipeline.Preprocess(8, 1, crop_padding=1, flip=True), 0)])
  # The warning as the loader words it (not through the logging handlers, which an earlier
  # test of the same pytest worker may have configured).
  warned = []
  monkeypatch.setattr(loader.logging, "warning", lambda msg, *args: warned.append(msg % args))
  # This feed's workers: children an earlier test of this process left ending are not.
  before = {p.pid for p in multiprocessing.active_children()}
  # 60 batches: a worker can have put 5 or more of its own in Grain's queues ahead; with 12 it
  # could have made all 6 it owed before the kill, and its death went unnoticed.
  ahead = loader.feed(make, 0, 60, workers=2)
  made = [next(ahead), next(ahead)]
  workers = [p for p in multiprocessing.active_children() if p.pid not in before]
  assert workers
  os.kill(workers[0].pid, signal.SIGKILL)
  workers[0].join(timeout=30)
  assert workers[0].exitcode == -signal.SIGKILL
  made += list(ahead)
  ahead.close()
  _equal(made, [make(s) for s in range(60)])
  assert isinstance(ahead.source, loader._InProcess), "the worker's death went unnoticed"
  assert any("a data worker died" in w for w in warned), warned
