"""What the configs share: `parse_arg`, the one parser of a config's argument (`path.py:arg`),
as big_vision's `configs/common.py` has it. Imports nothing of the library."""

import re


def tokens(arg: str | None) -> list[str]:
  """The items of an argument in order: joined by commas ("fashion,quick") or, as a directory
  name spells them, by underscores ("fashion_quick") where an item has no "=" (no option has
  either)."""
  if not arg:
    return []
  return [
      t.strip() for part in arg.split(",") for t in (part.split("_") if "=" not in part else [part])
  ]


def _typed(value: str, default, key: str):
  if isinstance(default, bool):
    if value.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"{key}={value!r}: give true or false")
    return value.lower() in ("true", "1")
  try:
    return type(default)(value) if default is not None else value
  except ValueError:
    raise ValueError(f"{key}={value!r}: give a {type(default).__name__}") from None


def parse_arg(arg: str | None, what: str = "option", example: str = "", **spec) -> dict:
  """The argument as a dict of `spec`'s keys: `key=value` pairs, or a bare key for a boolean set
  true (`quick,fashion`, `fashion_quick`, `quick=true`), the rest at their defaults (`spec`'s
  values, whose types the values take). ValueError, naming `what` (and `example`, a valid
  argument), for an empty, repeated or unknown key."""
  items = tokens(arg)
  example = example or ",".join(list(spec)[:2])
  valid = f"valid: {', '.join(spec)}, or several joined by commas ({example})"
  if "" in items:
    raise ValueError(f"an empty {what} in {arg!r}; {valid}")
  keys = [re.split("=", t, maxsplit=1)[0] for t in items]
  repeated = sorted({k for k in keys if keys.count(k) > 1})
  if repeated:
    raise ValueError(f"{what} {repeated[0]!r} given twice in {arg!r}")
  unknown = sorted(set(keys) - set(spec))
  if unknown:
    raise ValueError(f"unknown {what} {unknown[0]!r}; {valid}")
  out = dict(spec)
  for t, key in zip(items, keys):
    out[key] = _typed(t.partition("=")[2], spec[key], key) if "=" in t else True
  return out
