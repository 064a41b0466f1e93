"""Files of a run's work directory, written atomically (temporary file, then rename)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"


def atomic_write_text(path: str, text: str) -> None:
  """Writes `text` to `path` so that a reader sees the old file or the new one, never half."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path: str, obj) -> None:
  atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def read_jsonl(path: str) -> list[dict]:
  """Rows of a JSON-lines file; a last line cut short by a crash is skipped."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        pass
  return rows


class JsonlWriter:
  """Appends one JSON object per line and flushes it, so rows survive a crash."""

  def __init__(self, path: str):
    self.path = path
    self._file = open(path, "a")

  def write(self, row: dict) -> None:
    self._file.write(json.dumps(row, sort_keys=True) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def truncate_jsonl(path: str, keep: Iterable[dict]) -> None:
  atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
