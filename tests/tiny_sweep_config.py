"""A two-point sweep of the tiny training config, for the sweep, Ray and report tests."""

import os

from tests import tiny_train_config


def get_config():
  c = tiny_train_config.get_config()
  # Longer for the tests that stop a sweep mid-way.
  c.num_train_steps = int(os.environ.get("BOTTLENECK_TEST_SWEEP_STEPS", "8"))
  c.data_dir = os.environ.get("BOTTLENECK_TEST_TFDS_DIR")  # set by the tests' fixture
  return c


def get_sweep(arg: str = ""):
  del arg  # one sweep for every variant
  # More points, one unit each, for the cluster test.
  more = int(os.environ.get("BOTTLENECK_TEST_SWEEP_POINTS", "0"))
  if more:
    return [
        {"reduce": True, "seed": 0, "optimizer.learning_rate": 0.01 * (i + 1)} for i in range(more)
    ]
  return [{"reduce": True, "seed": 0}, {"reduce": False, "seed": 0}]
