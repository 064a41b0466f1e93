"""A run's work directory: its files, written atomically; one process at a time; nothing lost.

- Files are written atomically (temporary file, then rename) with the mode any other file of
  the process gets (0666 less the umask), so a crash leaves the old file or the new one.
- `lock(workdir)` holds an advisory `fcntl` lock on `workdir/.lock` for as long as a process
  works there; a second process is refused at once with the holder's PID and host. The kernel
  drops the lock when its holder dies, so a killed run's workdir is free again.
- `set_aside(...)` moves files that must not be used any more (a run superseded by a new
  config, a corrupt checkpoint, an unreadable result) under `workdir/.set_aside/<stamp>/`,
  never deletes them. Hidden directories are not searched for results.
- Paths are paths: nothing here treats them as glob patterns.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import io
import json
import math
import os
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterable, Iterator

import numpy as np
from absl import logging

from bottleneck.util.errors import ConfigError, CorruptFile, WorkdirBusy

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
ERROR = "error.json"  # a sweep point's failure
IMPORTED = "imported.json"  # weights from another framework (bottleneck.train.saved_models)
PREDICTIONS = "predictions.npz"  # the final evaluation's prediction for every example
EVALUATIONS = "evaluations"  # each evaluation's, along the run: <split>-<step>.npz
# What every result.json has; one without them is incomplete (cut short, or not ours).
RESULT_KEYS = ("model", "reduce", "dataset", "seed", "params", "macs", "eval_accuracy")
LOCK = ".lock"
SET_ASIDE = ".set_aside"


def umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write_text(path: str, text: str | bytes) -> None:
  """Writes `text` (or bytes) to `path` so that a reader sees the old file or the new one,
  never half."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
  try:
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
      f.write(text)
      f.flush()
      os.fchmod(f.fileno(), 0o666 & ~umask())  # mkstemp's 0600 would lock others out
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path: str, obj) -> None:
  atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: str, required: Iterable[str] = (), *, mapping: bool = False):
  """The JSON value in `path`; CorruptFile naming the path if it is cut short or not JSON, or,
  with `mapping` or `required` keys (a run's config.json, result.json, error.json), if it is
  not an object or lacks a `required` key."""
  try:
    with open(path) as f:
      obj = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CorruptFile(f"{path} is unreadable ({type(e).__name__}: {e}).") from None
  if not isinstance(obj, dict) and (mapping or required):
    raise CorruptFile(f"{path} is invalid: it holds {type(obj).__name__} {str(obj)[:40]!r}, "
                      "not a JSON object.")
  missing = [k for k in required if k not in obj]
  if missing:
    raise CorruptFile(f"{path} is incomplete: it lacks {', '.join(missing)}.")
  return obj


def write_predictions(path: str, predicted, labels) -> None:
  """The final evaluation's predicted class and label of every example of the split, in the
  split's order (what the intervals of `bottleneck.analysis.intervals` pair examples by)."""
  buffer = io.BytesIO()
  np.savez(buffer, predicted=np.asarray(predicted, np.int32), label=np.asarray(labels, np.int32))
  atomic_write_text(path, buffer.getvalue())


def read_predictions(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(predicted, label) of `write_predictions`; CorruptFile naming the path otherwise."""
  try:
    with np.load(path) as f:
      predicted, labels = f["predicted"], f["label"]
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    raise CorruptFile(f"{path} is unreadable ({type(e).__name__}: {e}).") from None
  if predicted.shape != labels.shape or predicted.ndim != 1:
    raise CorruptFile(f"{path} holds {predicted.shape} predictions for {labels.shape} labels.")
  return predicted, labels


# What each number of a result.json may be: (kind, lowest, highest, null allowed). Tables and
# the reports' findings average these, so a value outside its range (an accuracy written as a
# percentage, a negative time, NaN) would spread silently into every figure made from it.
_RESULT_FIELDS = {
    "params": ("int", 1, None, False),
    "macs": ("int", 1, None, False),
    "flops_xla": ("number", 0, None, True),
    "eval_accuracy": ("number", 0, 1, False),
    "eval_loss": ("number", 0, None, True),
    "train_steps": ("int", 1, None, True),
    "train_time_s": ("number", 0, None, True),
    "compile_time_s": ("number", 0, None, True),
    "examples_per_s": ("number", 0, None, True),
    "num_classes": ("int", 1, None, True),
    "seed": ("int", None, None, False),
}

# The fields of a result.json's `config` and `match` that tables and reports read (the
# ablation's knobs, the matched width): (kind, lowest, highest, null allowed), as above.
_KNOB_FIELDS = {
    "reduction_ratio": ("number", 0, 1, True),
    "reduction_activation": ("bool", None, None, True),
    "reduction_places": ("str", None, None, True),
    "pct3x3": ("number", 0, 1, True),
    "width": ("number", 0, None, True),
}
_MATCH_FIELDS = {
    "metric": ("str", None, None, False),
    "budget": ("number", 0, None, False),
    "width": ("number", 0, None, False),
}
# Other fields a reader takes as text: null allowed.
_TEXT_FIELDS = ("device", "warning", "jax_version", "malloc")


def _value_problem(key: str, v, kind: str, lo, hi, nullable: bool) -> str | None:
  """What is wrong with the value `v` of field `key` (see `_RESULT_FIELDS`), or None."""
  if v is None and nullable:
    return None
  if kind in ("str", "bool"):
    ok = isinstance(v, str if kind == "str" else bool)
    valid = "text" if kind == "str" else "true or false"
  else:
    ok = (not isinstance(v, bool) and isinstance(v, int if kind == "int" else (int, float))
          and math.isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi))
    valid = ("a whole number" if kind == "int" else
             "a finite number") + (f" in [{lo}, {hi}]" if lo is not None and hi is not None else
                                   f" >= {lo}" if lo is not None else "")
  if ok:
    return None
  hint = " (a fraction, not a percentage)" if key == "eval_accuracy" else ""
  return f"{key}={v!r} is invalid; it must be {valid}{' or null' if nullable else ''}{hint}"


def _fields_problem(values: dict, fields: dict, prefix: str = "") -> str | None:
  for key, (kind, lo, hi, nullable) in fields.items():
    if key in values:
      problem = _value_problem(prefix + key, values[key], kind, lo, hi, nullable)
      if problem:
        return problem
  return None


def _result_problem(result: dict) -> str | None:
  """What is wrong with a result.json (with every required key), or None: the type and range of
  every field a table, a report or a sweep reads, nested ones included."""
  for key in ("model", "dataset"):
    if not isinstance(result[key], str):
      return f"{key}={result[key]!r} is not a name"
  if not isinstance(result["reduce"], bool):
    return f"reduce={result['reduce']!r} is not true or false"
  problem = _fields_problem(result, _RESULT_FIELDS) or _fields_problem(
      result, {k: ("str", None, None, True) for k in _TEXT_FIELDS})
  if problem:
    return problem
  for key in ("config", "match"):
    if result.get(key) is not None and not isinstance(result[key], dict):
      return f"{key}={result[key]!r} is invalid; it must be an object or null"
  config, match = result.get("config") or {}, result.get("match")
  kwargs = config.get("model_kwargs")
  if kwargs is not None and not isinstance(kwargs, dict):
    return f"config.model_kwargs={kwargs!r} is invalid; it must be an object or null"
  if match is not None:
    missing = [k for k in _MATCH_FIELDS if k not in match]
    if missing:
      return f"match lacks {', '.join(missing)}"
  return (_fields_problem(kwargs or {}, _KNOB_FIELDS, "config.model_kwargs.")
          or _fields_problem(match or {}, _MATCH_FIELDS, "match."))


def read_result(path: str, required: Iterable[str] = ()) -> dict:
  """A run's result.json, its values checked (`_RESULT_FIELDS`): CorruptFile naming the file
  and the value if it is cut short, lacks a key of RESULT_KEYS (or `required`) or holds a
  value no run writes."""
  result = read_json(path, tuple(RESULT_KEYS) + tuple(required))
  problem = _result_problem(result)
  if problem:
    raise CorruptFile(f"{path} is invalid: {problem}.")
  return result


def reuse_json(workdir: str, name: str, valid=None, required: Iterable[str] = ()):
  """What an earlier run left in `workdir/name`, to reuse: its JSON, or None if there is none
  or it is corrupt (cut short, lacking a `required` key, or not `valid(it)`, e.g. made with
  other settings), in which case it is set aside (`set_aside`, nothing deleted) to be
  computed again."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return None
  try:
    data = read_json(path, required)
    if valid is not None and not valid(data):
      raise CorruptFile(f"{path} is incomplete or was made with other settings.")
    return data
  except CorruptFile as e:
    moved = set_aside(workdir, [name], str(e))
    logging.warning("%s Moved to %s; computing it again.", e, moved)
    return None


def read_jsonl(path: str, valid=lambda row: True, what: str = "JSON objects") -> list[dict]:
  """The rows of a JSON-lines file (none if it is absent): JSON objects for which `valid(row)`
  holds. A last line cut short by a crash is skipped; any other line that is not such a row
  (an edit, another program's) is skipped with a warning naming the file and the line."""
  if not os.path.exists(path):
    return []
  rows, bad = [], []
  with open(path, errors="replace") as f:
    lines = f.read().splitlines()
  for number, line in enumerate(lines, 1):
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      if number == len(lines):  # cut short by a crash: expected, not worth a warning
        continue
      row = None
    if isinstance(row, dict) and valid(row):
      rows.append(row)
    else:
      bad.append(str(number))
  if bad:
    logging.warning("%s: line(s) %s are not %s; skipped.", path, ", ".join(bad[:5]) +
                    (" ..." if len(bad) > 5 else ""), what)
  return rows


def read_metrics(path: str) -> list[dict]:
  """The rows of a run's metrics.jsonl (`read_jsonl`), each with a whole-number step."""
  return read_jsonl(path, lambda r: type(r.get("step")) is int and isinstance(r.get("split"), str),
                    "metrics rows (objects with a whole-number step and a split)")


class JsonlWriter:
  """Appends one JSON object per line and flushes it, so rows survive a crash."""

  def __init__(self, path: str):
    self.path = path
    self._file = open(path, "a")

  def write(self, row: dict) -> None:
    self._file.write(json.dumps(row, sort_keys=True, default=str) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def truncate_jsonl(path: str, keep: Iterable[dict]) -> None:
  atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))


def find_files(directory: str, name: str) -> list[str]:
  """Every file called `name` below `directory` (any depth, hidden directories skipped),
  sorted. The directory is a path, not a pattern: `[`, `*` and spaces are plain characters."""
  found = []
  for root, dirs, files in os.walk(directory):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    if name in files:
      found.append(os.path.join(root, name))
  return sorted(found)


def has_checkpoints(workdir: str) -> bool:
  """Whether `workdir/checkpoints` holds a step (readable or not)."""
  directory = os.path.join(workdir, CHECKPOINTS)
  return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


# --- one process per workdir -----------------------------------------------------------------


def ensure_writable(workdir: str, what: str = "--workdir") -> None:
  """Creates `workdir` or raises ConfigError at once if it cannot be used."""
  try:
    os.makedirs(workdir, exist_ok=True)
  except FileExistsError:
    raise ConfigError(f"{what}={workdir} is a file, not a directory.") from None
  except OSError as e:
    raise ConfigError(f"{what}={workdir} cannot be created: {e.strerror}.") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ConfigError(f"{what}={workdir} is not writable by this user.")


@contextlib.contextmanager
def lock(workdir: str, what: str = "--workdir", *, wait: bool = False,
         lock_name: str = LOCK) -> Iterator[None]:
  """Holds `workdir`'s lock for the `with` block. If another live process holds it: WorkdirBusy
  at once, naming the holder (PID, host, start time, which the lock file records), or with
  `wait`, wait for it."""
  ensure_writable(workdir, what)
  path = os.path.join(workdir, lock_name)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
  except OSError as e:
    raise ConfigError(f"{what}={workdir} cannot be used: {path}: {e.strerror}.") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise ConfigError(f"{what}={workdir} cannot be locked: {e.strerror}.") from None
      holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
      if not wait:
        raise WorkdirBusy(f"{workdir} is in use by {holder}; wait for it to finish, or use "
                          "another workdir.") from None
      logging.info("waiting for %s, which holds %s", holder, path)
      fcntl.flock(fd, fcntl.LOCK_EX)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"PID {os.getpid()} on host {socket.gethostname()} (since {started})".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock; the file stays (removing it would race a new holder)


# --- nothing lost ----------------------------------------------------------------------------


def set_aside(workdir: str, names: Iterable[str], reason: str) -> str | None:
  """Moves `names` (files or directories inside `workdir`) to a new
  `workdir/.set_aside/<stamp>/`, with a README saying why; returns that folder (None if none
  of them existed)."""
  present = [n for n in names if os.path.lexists(os.path.join(workdir, n))]
  if not present:
    return None
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  target = os.path.join(workdir, SET_ASIDE, stamp)
  n = 1
  while os.path.exists(target):
    n += 1
    target = os.path.join(workdir, SET_ASIDE, f"{stamp}-{n}")
  os.makedirs(target)
  atomic_write_text(os.path.join(target, "README"), reason.rstrip() + "\n")
  for name in present:
    os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
    shutil.move(os.path.join(workdir, name), os.path.join(target, name))
  return target
