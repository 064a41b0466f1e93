"""Tests run on the CPU, whatever machine they are on; the digits dataset is built once."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole run, subprocesses included: the many small
# programs of model initialisation compile once instead of once per process.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
  """A TFDS data directory holding the embedded digits dataset, built once per session."""
  from bottleneck.data import pipeline  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp("tfds"))
  pipeline.load_splits("digits", data_dir=path)
  os.environ["BOTTLENECK_TEST_TFDS_DIR"] = path  # for config files that tests load by name
  return path
