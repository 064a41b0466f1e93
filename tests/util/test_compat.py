"""`bottleneck.util.compat`: the work-arounds for third-party libraries, each idempotent."""

import importlib.util
import logging as std_logging

import pytest
from absl import logging
from etils import epath

from bottleneck.util import compat


def test_escape_epath_glob_finds_files_under_a_directory_with_glob_characters(tmp_path):
  compat.escape_epath_glob()
  compat.escape_epath_glob()  # twice: still one wrapper
  directory = tmp_path / "runs [a*b?]"
  directory.mkdir()
  (directory / "7").mkdir()
  assert [p.name for p in epath.Path(directory).glob("*")] == ["7"]


def test_quiet_orbax_drops_orbax_info_but_not_its_warnings():
  compat.quiet_orbax()
  compat.quiet_orbax()
  filters = [f for f in logging.get_absl_handler().filters if type(f).__name__ == "_QuietOrbax"]
  assert len(filters) == 1

  def record(level, path):
    return std_logging.LogRecord("x", level, path, 1, "message", None, None)

  assert not filters[0].filter(record(std_logging.INFO, "/site-packages/orbax/checkpoint/a.py"))
  assert filters[0].filter(record(std_logging.WARNING, "/site-packages/orbax/checkpoint/a.py"))
  assert filters[0].filter(record(std_logging.INFO, "/work/bottleneck/train/loop.py"))


def test_torchvision_models_leaves_a_package_others_can_find():
  """Where torchvision's own import fails, `torchvision_models` puts a stand-in package in
  its place; `importlib.util.find_spec` (as other tests and libraries call it) must still
  work on it, in any test order."""
  pytest.importorskip("torch")
  if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed (the torch extra)")
  assert compat.torchvision_models().GoogLeNet.__name__ == "GoogLeNet"
  assert importlib.util.find_spec("torchvision") is not None
