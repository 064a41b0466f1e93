"""Helpers for the thin entry points in `experiments/`.

`run(main)` is `absl.app.run(main)` with the command-line contract of every entry point: bad
input (a flag, a config override, a config file or variant, a value) is one line on stderr
starting with "error:" and exit status 2; Ctrl-C is one line saying how to resume and exit
status 130. Stray positional arguments are refused.
"""

from __future__ import annotations

import os
import re
import sys

from absl import app, flags

from bottleneck.util import compat, config_files, signals, validation
from bottleneck.util.errors import ConfigError, UserError

USAGE = 2
INTERRUPTED = 130


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(USAGE)


def _missing_field(argv: list[str]) -> str | None:
  """For an override of a field the config does not have (the most common typo), that field
  and the closest one it has; None if every override names a field."""
  spec = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")]
  try:  # config_flags leaves no config behind a failed override: load it again to compare
    config = config_files.load_config_file(spec[-1])[1]
  except Exception:  # the config itself did not load
    config = None
  for arg in argv[1:]:
    if not arg.startswith("--config.") or config is None:
      continue
    flag = arg.split("=")[0]
    path, node = flag[len("--config."):].split("."), config
    for i, name in enumerate(path):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if name not in keys:
        return (f"{flag}: the config has no field {'.'.join(path[:i + 1])!r}."
                f"{validation.closest(name, keys)}")
      node = node[name]
  return None


def _one_line(text: str) -> str:
  """The gist of a multi-line parse error (config_flags quotes the config file's traceback)."""
  lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
  if not lines:
    return "invalid arguments"
  errno_line = [ln for ln in lines if "[Errno" in ln]  # a config file that cannot be read
  if errno_line:
    return f"--config: {errno_line[-1]}"
  tail = [ln for ln in lines if re.match(r"^\w*(Error|Exception)\b", ln)]
  head = re.sub(r"Error whilst parsing config file:?$", "", lines[0]).strip()
  if tail:
    return head if tail[-1] in head else f"{head} {tail[-1]}".strip()
  return " ".join(lines[:2])


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors (exit 2) and no stray positional arguments."""
  try:
    rest = flags.FLAGS(argv)
    if "config" in flags.FLAGS:  # a config file that failed to load raises when first read
      getattr(flags.FLAGS["config"].value, "keys", None)
  except flags.Error as e:
    _fail(_missing_field(argv) or _one_line(str(e)))
  except Exception as e:  # config_flags raises plain errors
    _fail(_missing_field(argv) or _one_line(f"{type(e).__name__}: {e}"))
  if len(rest) > 1:
    _fail(f"unexpected argument(s) {' '.join(rest[1:])!r}: every option is a --flag "
          "(see --helpshort).")
  empty = _empty_flags()
  if empty:
    _fail(f"--{empty[0]}= is empty; give it a value, or leave it out for its default.")
  return rest


def _empty_flags() -> list[str]:
  """The entry point's own text and list flags given as "--name=" (an empty value): as a
  default they would be taken silently (`--study=` ran the main report, `--out=` wrote
  nothing). Config overrides are the config's to check; absl's own flags, absl's."""
  out = []
  for name in sorted(flags.FLAGS):
    flag, module = flags.FLAGS[name], flags.FLAGS.find_module_defining_flag(name) or ""
    if (flag.present and (flag.flag_type() == "string" or "list" in flag.flag_type())
        and flag.value in ("", []) and not name.startswith("config")
        and not module.startswith("absl") and name == flag.name):  # not a short alias
      out.append(name)
  return out


def run(main) -> None:
  """`absl.app.run(main)` with one-line errors (exit 2) and a one-line Ctrl-C (exit 130)."""

  def guarded(argv):
    compat.quiet_orbax()
    try:
      return main(argv)
    except UserError as e:
      _fail(str(e))
    except signals.Interrupted as e:  # stopped cleanly, checkpoints saved
      print(f"\n{e}", file=sys.stderr)
      sys.exit(INTERRUPTED)
    except KeyboardInterrupt as e:
      print(
          f"\n{e}" if str(e) else "\ninterrupted: rerun the same command to resume from the "
          "last checkpoint.", file=sys.stderr)
      sys.stdout.flush()
      sys.stderr.flush()
      # Not sys.exit: interrupted anywhere (a second Ctrl-C), orbax's save threads may wait for
      # ever and keep the interpreter from exiting. Files were closed by `finally` blocks.
      os._exit(INTERRUPTED)

  app.run(guarded, flags_parser=parse_flags)


def parse_bool_or_both(value: str, flag: str) -> tuple[bool, ...]:
  """'true' -> (True,), 'false' -> (False,), 'both' -> (True, False)."""
  table = {"true": (True,), "false": (False,), "both": (True, False)}
  if value.lower() not in table:
    raise ConfigError(f"--{flag}={value!r} is invalid; valid: true, false, both.")
  return table[value.lower()]
