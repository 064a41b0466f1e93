"""Batches made ahead by Grain (docs/training.md, "The input pipeline: data workers").

A training step's batch is a function of the seed and the step (`pipeline.Batches.train_batch`:
the epoch's permutation, the examples read and decoded, resized, cropped, flipped, and
normalised, or left uint8 for the device to normalise as the training loop's are),
and an evaluation batch of its index. `feed` makes the batches of a range of indices in
`workers` processes, in order, each worker a few batches ahead; with 0 workers each batch is
made in this process when it is needed. Either way a batch is the same numbers: the workers run
the same function.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import numpy as np
from absl import logging

from bottleneck.util import signals

# Batches each worker keeps made ahead of the training.
BUFFER = 2


def default_workers(platform: str, cores: int | None = None, in_memory: bool = False) -> int:
  """`data.workers` when the config leaves it unset (None). None for a training split held in
  memory (`in_memory`: `pipeline.Split.in_memory`, images of one shape): its batch is an index,
  a crop and a flip, made in the training process while the device computes the step, where
  workers would cost their start at every evaluation (docs/training.md). Else on a CPU, whose
  cores also compute the steps, none below 8 cores and a quarter of them above; beside an
  accelerator every core but the training process's, up to 16."""
  if in_memory:
    return 0
  cores = cores or os.cpu_count() or 1
  if platform == "cpu":
    return 0 if cores < 8 else min(cores // 4, 8)
  return max(1, min(cores - 1, 16))


class StepBatches:
  """step -> the batch of that step of each run trained together (`Together`: stacked on a
  leading axis when there are several). Picklable: Grain sends it to its workers."""

  def __init__(self, batches: list):
    self.batches = batches

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    trees = [b.train_batch(int(step)) for b in self.batches]
    if len(trees) == 1:
      return trees[0]
    return {k: np.stack([t[k] for t in trees]) for k in trees[0]}


class _Worker:
  """Each worker's set-up: it leaves Ctrl-C and SIGTERM (a terminal's, a scheduler's: to every
  process of the job) to the training process, which stops at a checkpoint and then ends the
  workers (a worker that died first would end the run without it), and it ends when the
  training process dies (SIGKILL)."""

  def __init__(self):
    self.parent = os.getpid()

  def __call__(self, index: int, count: int) -> None:
    del index, count
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signals.end_with_parent(self.parent)


class _Passes:
  """index -> evaluation batch `index % count`: the passes over a split, one after another.
  Picklable: Grain sends it to its workers."""

  def __init__(self, make: Callable[[int], dict], count: int):
    self.make, self.count = make, count

  def __call__(self, index: int) -> dict:
    return self.make(int(index) % self.count)


class Ahead:
  """Evaluation batches (`pipeline.Batches.eval_batches`, in order, the last one padded and
  masked) made by `workers` processes. The workers are started once, for every pass over the
  split: after a pass they make the first batches of the next and wait, where starting them anew
  cost seconds a pass (docs/training.md). A pass left unfinished (an error mid-evaluation)
  restarts them at the next. Close it (`close`) to end them."""

  def __init__(self, batches, workers: int):
    self.batches, self.workers = batches, workers
    self._feed, self._taken = None, 0  # the workers' feed, and the batches taken from it

  def eval_batches(self) -> Iterator[dict]:
    count = self.batches.num_eval_batches
    if self._feed is not None and self._taken % count:  # the last pass was left midway
      self.close()
    if self._feed is None:
      self._feed, self._taken = feed(_Passes(self.batches.eval_batch, count), 0, 2**62,
                                     self.workers), 0
    for _ in range(count):
      batch = next(self._feed)
      self._taken += 1
      yield batch

  def close(self) -> None:
    if self._feed is not None:
      self._feed.close()
      self._feed = None


def feed(make: Callable[[int], dict], start: int, stop: int, workers: int) -> Iterator[dict]:
  """The batches `make(start)` .. `make(stop - 1)`, in order (see the module doc); `make` is
  picklable (`StepBatches`, a bound method of `pipeline.Batches`). Close the iterator (`close`)
  to end its workers early."""
  if workers == 0:
    return _InProcess(make, start, stop)
  import grain
  from absl import flags
  if not flags.FLAGS.is_parsed():  # Grain reads absl flags of its own; a library caller
    flags.FLAGS.mark_as_parsed()  # (a test, a notebook) has parsed none
  steps = grain.MapDataset.range(start, stop).map(make)
  ahead = steps.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
  return _Workers(
      make, start, stop,
      iter(
          ahead.mp_prefetch(
              grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=BUFFER),
              worker_init_fn=_Worker())))


class _Workers:
  """`feed` with workers. A worker that dies (killed, out of memory) does not end the run:
  the batches from the one it owed on are made in this process, the same numbers, and a
  warning says so."""

  def __init__(self, make: Callable[[int], dict], start: int, stop: int, workers: Iterator):
    self.make, self.index, self.stop, self.source = make, start, stop, workers

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if self.index >= self.stop:
      raise StopIteration
    try:
      batch = next(self.source)
    except RuntimeError as e:  # Grain's word for a worker gone: "terminated unexpectedly"
      if "terminated unexpectedly" not in str(e):
        raise
      logging.warning(
          "a data worker died (%s); batches %d on are made in this process instead (the same "
          "numbers, more slowly). If memory ran out, lower data.workers.",
          str(e).splitlines()[0], self.index)
      self.close()
      self.source = _InProcess(self.make, self.index, self.stop)
      batch = next(self.source)
    self.index += 1
    return batch

  def close(self) -> None:
    self.source.close()


class _InProcess:
  """`feed` with no workers: each batch made when it is asked for."""

  def __init__(self, make: Callable[[int], dict], start: int, stop: int):
    self.make, self.steps = make, iter(range(start, stop))

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    return self.make(next(self.steps))

  def close(self) -> None:
    pass
