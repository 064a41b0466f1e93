"""Helpers for the thin entry points in `experiments/`."""

from __future__ import annotations

import sys

from absl import app

from bottleneck.validation import ConfigError


def run(main) -> None:
  """`absl.app.run(main)`, turning a ConfigError into one line on stderr and exit status 2."""

  def guarded(argv):
    try:
      return main(argv)
    except ConfigError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  app.run(guarded)


def parse_bool_or_both(value: str, flag: str) -> tuple[bool, ...]:
  """'true' -> (True,), 'false' -> (False,), 'both' -> (True, False)."""
  table = {"true": (True,), "false": (False,), "both": (True, False)}
  if value.lower() not in table:
    raise ConfigError(f"--{flag}={value!r} is invalid; valid: true, false, both.")
  return table[value.lower()]
