"""Argument checks that fail early, with a message naming the value and what is valid."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
  """A model, block or experiment was asked for something it cannot be."""


def positive_int(value, name: str, where: str) -> int:
  """Returns `value` if it is an integer >= 1, else raises ConfigError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ConfigError(
        f"{where}: {name}={value!r} is invalid; it must be a whole number >= 1.")
  return value


def ratio(value, name: str, where: str) -> float:
  """Returns `value` if it lies in (0, 1], else raises ConfigError."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
    raise ConfigError(
        f"{where}: {name}={value!r} is invalid; it must lie in (0, 1].")
  return float(value)


def choice(value, name: str, valid: Iterable, where: str):
  """Returns `value` if it is one of `valid`, else raises ConfigError naming the closest."""
  valid = list(valid)
  if value in valid:
    return value
  by_lower = {str(v).lower(): v for v in valid}
  close = difflib.get_close_matches(str(value).lower(), list(by_lower), n=1)
  hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
  raise ConfigError(
      f"{where}: unknown {name} {value!r}; valid: {', '.join(map(str, valid))}.{hint}")
