"""Work-arounds for third-party libraries, in one place, each applied where it is needed.

Nothing here runs at import: every shim is a function that its caller applies, and each is
idempotent.

- `quiet_orbax()`: absl's log format on stderr without orbax's INFO chatter (a dozen lines per
  checkpoint). Applied by `cli.run` (every entry point) and by sweep worker processes.
- `escape_epath_glob()`: etils' local `Path.glob` joins the directory into the pattern
  unescaped, so orbax cannot find its own files under a directory whose name has `[`, `]`,
  `*` or `?` (every checkpoint there reads as corrupt). Applied by `checkpoints.manager`, the
  one way this project opens checkpoints.
- `torchvision_models()`: `torchvision.models`, imported without `torchvision/__init__.py`
  where that fails: PyPI's torchvision 0.28 is a CUDA build whose import registers kernels for
  its compiled ops, which a CPU-only torch 2.13 refuses (`operator torchvision::nms does not
  exist`); the model definitions use none of them. It replaces `torchvision` and
  `torchvision.models` in `sys.modules` with stand-in packages (with specs, so that others can
  find them). Applied by the weight import (`nn/import_weights.py`).
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import logging as std_logging
import os
import sys
import types

from absl import logging

from bottleneck.util.errors import ConfigError


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO chatter; its warnings still show."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def quiet_orbax() -> None:
  """absl's log format on stderr, without orbax's INFO lines."""
  logging.use_absl_handler()
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietOrbax) for f in handler.filters):
    handler.addFilter(_QuietOrbax())


def escape_epath_glob() -> None:
  """etils' local `Path.glob` with the directory part escaped (remote paths unchanged)."""
  from etils.epath import backend as epath_backend, gpath
  if getattr(gpath.PosixGPath.glob, "_bottleneck_escaped", False):
    return
  original = gpath.PosixGPath.glob

  def glob_(self, pattern: str):
    if not isinstance(self._backend, epath_backend._OsPathBackend) or "**" in pattern:
      yield from original(self, pattern)  # remote file systems; "**", which etils refuses
      return
    for f in glob.glob(os.path.join(glob.escape(self._path_str), pattern)):
      yield self._new(f)

  glob_._bottleneck_escaped = True
  gpath.PosixGPath.glob = glob_


# torchvision's modules whose builders `torchvision_models()` exposes when it cannot import
# `torchvision/__init__.py`.
_BUILDERS = {
    "resnet": ("resnet18", "resnet34", "resnet50"),
    "squeezenet": ("squeezenet1_0", "squeezenet1_1"),
    "mobilenetv2": ("mobilenet_v2",),
}


def torchvision_models():
  """`torchvision.models`, imported without `torchvision/__init__.py` if that fails."""
  try:
    return importlib.import_module("torchvision.models")
  except ImportError:
    raise ConfigError("torchvision is not installed: pip install -e '.[torch]'") from None
  except RuntimeError:
    pass
  for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
    del sys.modules[name]
  root = os.path.dirname(importlib.util.find_spec("torchvision").origin)
  for name, path in (("torchvision", root), ("torchvision.models", os.path.join(root, "models"))):
    module = types.ModuleType(name)
    module.__path__, module.__file__ = [path], os.path.join(path, "__init__.py")
    # A spec, as an imported package has: `importlib.util.find_spec` raises on a module
    # without one.
    module.__spec__ = importlib.util.spec_from_file_location(name, module.__file__,
                                                             submodule_search_locations=[path])
    sys.modules[name] = module
  package = sys.modules["torchvision.models"]
  for sub in ("googlenet", "inception", *_BUILDERS):
    setattr(package, sub, importlib.import_module(f"torchvision.models.{sub}"))
  package.GoogLeNet = package.googlenet.GoogLeNet
  package.Inception3 = package.inception.Inception3
  for sub, names in _BUILDERS.items():
    for name in names:
      setattr(package, name, getattr(getattr(package, sub), name))
  return package
