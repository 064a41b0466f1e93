"""Transparent huge pages for the memory XLA's CPU programs allocate, through glibc's malloc.

A training step of the small Inception on a CPU allocates one large block for XLA's temporaries
and frees it after the step; glibc maps it fresh from the kernel every step, and touching it
costs a page fault per 4 KB. With glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35)
malloc asks the kernel for transparent huge pages (`madvise`), and the faults fall by the
ratio of the page sizes (what it saves: docs/benchmarks.md, "Huge pages for XLA's buffers").
A tunable is read when the process starts,
so the entry points (`python -m experiments.<name>`) re-execute themselves once with it set
(`experiments/__init__.py`), before anything heavy is imported. They do so only where it
matters: Linux with glibc >= 2.35 and the kernel's THP mode `madvise` (with `always`, malloc's
memory is huge already; with `never`, it cannot be). `BOTTLENECK_HUGEPAGES=0` turns it off;
a GLIBC_TUNABLES that names the tunable already is left as it is. Worker processes inherit the
environment and start with it.

This module imports nothing heavy: it runs before JAX is imported.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "BOTTLENECK_HUGEPAGES"  # "0" keeps malloc's 4 KB pages
OFF, ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_mode(path: str = THP_ENABLED) -> str | None:
  """The kernel's transparent-huge-page mode ("always", "madvise", "never"), None if unknown."""
  try:
    with open(path, encoding="ascii") as f:
      text = f.read()
  except OSError:
    return None
  start, end = text.find("["), text.find("]")
  return text[start + 1:end] if 0 <= start < end else None


def glibc_version() -> tuple[int, ...] | None:
  """(2, 36) for glibc 2.36; None on a C library that is not glibc (musl, macOS, Windows)."""
  try:
    name, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()
    return tuple(int(p) for p in version.split(".")[:2]) if name == "glibc" else None
  except (AttributeError, ValueError, OSError):
    return None


def tunable_value(environ) -> str | None:
  """The value GLIBC_TUNABLES gives `glibc.malloc.hugetlb`, None when it does not name it."""
  for item in environ.get("GLIBC_TUNABLES", "").split(":"):
    key, _, value = item.partition("=")
    if key == TUNABLE:
      return value
  return None


def wanted(environ, *, mode: str | None, glibc: tuple[int, ...] | None) -> str | None:
  """Why not to set the tunable (a short reason), or None when it should be set; ValueError
  for a value of the opt-out that is neither on nor off (it is not guessed)."""
  value = environ.get(OPT_OUT, "").strip().lower()
  if value not in OFF + ON + ("",):  # empty: as if unset
    raise ValueError(
        f"{OPT_OUT}={environ[OPT_OUT]!r} is invalid; valid: {', '.join(OFF)} (malloc's "
        f"4 KB pages) or {', '.join(ON)} (huge pages where they help, the default).")
  if value in OFF:
    return f"off ({OPT_OUT}={environ[OPT_OUT]})"
  if tunable_value(environ) is not None:
    return f"as set (GLIBC_TUNABLES {TUNABLE}={tunable_value(environ)})"
  if glibc is None or glibc < (2, 35):
    return "not available (needs glibc >= 2.35)"
  if mode != "madvise":
    return f"not needed (the kernel's THP mode is {mode or 'unknown'})"
  return None


def with_tunable(environ) -> dict:
  """A copy of `environ` whose GLIBC_TUNABLES also sets `glibc.malloc.hugetlb=1`."""
  env = dict(environ)
  env["GLIBC_TUNABLES"] = ":".join([p for p in environ.get("GLIBC_TUNABLES", "").split(":") if p]
                                   + [f"{TUNABLE}=1"])
  return env


def without_tunable(environ) -> dict:
  """A copy of `environ` with malloc's 4 KB pages: the opt-out set, the tunable removed."""
  env = dict(environ)
  rest = [
      p for p in env.pop("GLIBC_TUNABLES", "").split(":") if p and p.partition("=")[0] != TUNABLE
  ]
  if rest:
    env["GLIBC_TUNABLES"] = ":".join(rest)
  env[OPT_OUT] = "0"
  return env


def state(environ=None) -> str:
  """In words, for logs and reports: whether this process's malloc uses huge pages."""
  environ = os.environ if environ is None else environ
  value = tunable_value(environ)
  if value is not None:
    return f"malloc huge pages {'on' if value == '1' else 'off'} ({TUNABLE}={value})"
  try:
    reason = wanted(environ, mode=thp_mode(), glibc=glibc_version())
  except ValueError as e:
    return f"malloc huge pages off ({e})"
  return f"malloc huge pages {reason or 'off (not started by an entry point)'}"


def reexec_entry_point() -> None:
  """Re-executes this `python -m experiments.<name>` with the tunable set, when `wanted`.

  Called while Python imports the `experiments` package for `-m`, when sys.argv[0] is "-m";
  an import of the package from anywhere else (the tests, an interpreter) does nothing."""
  if sys.argv[:1] != ["-m"] or not getattr(sys, "orig_argv", None):
    return
  try:
    if wanted(os.environ, mode=thp_mode(), glibc=glibc_version()) is not None:
      return
  except ValueError as e:  # bad input: one line, as every entry point says it
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  env = with_tunable(os.environ)
  try:
    os.execve(sys.executable, sys.orig_argv, env)
  except OSError:  # cannot re-execute (an odd interpreter path): run on with 4 KB pages
    pass
