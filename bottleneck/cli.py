"""Helpers for the thin entry points in `experiments/`."""

from __future__ import annotations

import sys

import logging as std_logging

from absl import app, logging

from bottleneck.validation import ConfigError


def run(main) -> None:
  """`absl.app.run(main)`, turning a ConfigError into one line on stderr and exit status 2."""

  def guarded(argv):
    logging.get_absl_handler().addFilter(_QuietOrbax())
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


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO chatter (a dozen lines per checkpoint); its warnings still show."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname
