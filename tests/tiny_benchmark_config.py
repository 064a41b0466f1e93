"""A benchmark config small enough for tests."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.cases = ["small_inception"]
  c.batches = (2,)
  c.dtypes = ("float32",)
  c.paths = ("xla", "auto")
  c.warmup = 1
  c.repeats = 2
  return c
