"""Argument checks that fail early, with a message naming the value and what is valid."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

from bottleneck.util.errors import ConfigError


def positive_int(value, name: str, where: str) -> int:
  """Returns `value` if it is an integer >= 1, else raises ConfigError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ConfigError(f"{where}: {name}={value!r} is invalid; it must be a whole number >= 1.")
  return value


def ratio(value, name: str, where: str) -> float:
  """Returns `value` if it lies in (0, 1], else raises ConfigError."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
    raise ConfigError(f"{where}: {name}={value!r} is invalid; it must lie in (0, 1].")
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


def whole(value, name: str, where: str, minimum: int = 0) -> int:
  """Returns `value` if it is an integer >= `minimum`, else raises ConfigError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(
        f"{where}: {name}={value!r} is invalid; it must be a whole number >= {minimum}.")
  return value


def number(value, name: str, where: str, *, above: float | None = None,
           at_least: float | None = None, below: float | None = None,
           at_most: float | None = None) -> float:
  """Returns `value` if it is a finite number within the given bounds, else raises
  ConfigError saying the valid range."""
  bounds = [
      f"> {above:g}" if above is not None else None,
      f">= {at_least:g}" if at_least is not None else None,
      f"< {below:g}" if below is not None else None,
      f"<= {at_most:g}" if at_most is not None else None
  ]
  ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        and (above is None or value > above) and (at_least is None or value >= at_least)
        and (below is None or value < below) and (at_most is None or value <= at_most))
  if not ok:
    rule = " and ".join(b for b in bounds if b) or "finite"
    raise ConfigError(f"{where}: {name}={value!r} is invalid; it must be a number {rule}.")
  return float(value)


def boolean(value, name: str, where: str) -> bool:
  if not isinstance(value, bool):
    raise ConfigError(f"{where}: {name}={value!r} is invalid; it must be true or false.")
  return value


def closest(name: str, valid: Iterable[str]) -> str:
  """' Did you mean 'x'?' for the closest of `valid`, or ''."""
  close = difflib.get_close_matches(name, list(valid), n=1)
  return f" Did you mean {close[0]!r}?" if close else ""
