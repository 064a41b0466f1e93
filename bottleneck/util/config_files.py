"""Config files as `--config` names them: `path.py` or `path.py:arg` (ml_collections'
`config_flags` syntax), loaded outside flag parsing (by sweeps, studies and the one-line
error of a mistyped override)."""

from __future__ import annotations

import importlib.util
import os
import re

from bottleneck.util.errors import ConfigError, UserError


def load_config_file(spec: str):
  """(module, config) from `path.py` or `path.py:arg` (the --config syntax)."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise ConfigError(f"config file {path!r} does not exist.")
  name = "bottleneck_config_" + re.sub(r"\W", "_", os.path.abspath(path))
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except UserError:
    raise
  except Exception as e:  # the user's file: say what failed
    raise ConfigError(f"{spec}: {type(e).__name__}: {e}") from None
  return module, config
