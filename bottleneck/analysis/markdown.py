"""What every markdown report of the project shares (the main report, the ablation study, the
roofline, the benchmark): a header that says how, when and where it was made; JSON computed
once and reused only while it matches what would be computed now; sections as data.

- `header(title, command, ...)`: the title, "Made by `command` on DATE[, in N s ...]", the
  machine and library versions (`env.environment()`), and the data when there is one.
- `cached_json(workdir, name, compute, settings=..., valid=...)`: the JSON an earlier run left,
  if it was made with the same `settings` (everything it must match: cases, ratios, batch,
  dtypes, repeats, ...) and passes `valid`; else `compute()`, stored with its settings. A file
  cut short, invalid or made with other settings is set aside (nothing deleted) and computed
  again. `refuse_changed` refuses such a file instead (as a sweep refuses its changed points)
  unless the user asked to rerun it.
- `Section(title, body, answer)` and `render(header, sections)`: a report's text, with a
  numbered list of the sections' one-line answers when they have them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shlex
import time
from collections.abc import Callable, Sequence

from absl import logging

from bottleneck.util import env, workdir as wd
from bottleneck.util.errors import ConfigError

SETTINGS = "settings"


def command(module: str, *flags: str) -> str:
  """`python -m module flags...`, quoted so that it runs as shown (spaces, brackets)."""
  return shlex.join(["python", "-m", module, *flags])


def header(title: str, made_by: str, *, start: float | None = None, counts: str = "",
           data: str | None = None) -> list[str]:
  """A report's first lines: its title, the command that made it and when (with the time it
  took since `start`, finished work reused; `counts`, e.g. "; 70 training runs finished"),
  the machine and library versions, and the data (`data`) when the report has one."""
  took = "" if start is None else f", in {time.time() - start:.0f} s (finished work reused)"
  lines = [
      f"# {title}", "",
      f"Made by `{made_by}` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}{took}"
      f"{counts}.", "", f"Machine: {env.environment()}.", ""
  ]
  return lines + ([f"Data: {data}", ""] if data else [])


def write_markdown(path: str, title: str, made_by: str, body: str) -> None:
  """`body` under a `header` (no duration), written atomically to `path`."""
  wd.atomic_write_text(path, "\n".join([*header(title, made_by), body]))


def _as_json(value):
  """`value` as it reads back from JSON (tuples become lists, keys strings)."""
  return json.loads(json.dumps(value))


def changes(workdir: str, name: str, settings: dict) -> list[str] | None:
  """What differs between `settings` and those `workdir/name` was made with ("key old ->
  new"); None if there is no readable file to compare."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return None
  try:
    kept = wd.read_json(path)
  except wd.CorruptFile:
    return None
  old = (kept.get(SETTINGS) if isinstance(kept, dict) else None) or {}
  return [
      f"{k} {old.get(k, 'unrecorded')!r} -> {v!r}" for k, v in _as_json(settings).items()
      if old.get(k) != v
  ]


def refuse_changed(workdir: str, name: str, settings: dict, rerun_changed: bool,
                   source: str) -> None:
  """ConfigError if `workdir/name` was made with other settings than `settings` (from
  `source`, e.g. "configs/benchmark.py:ratio"); with `rerun_changed` it is set aside instead,
  to be computed again. Call it before hours of other work, not after."""
  changed = changes(workdir, name, settings)
  if not changed:
    return
  path = os.path.join(workdir, name)
  if not rerun_changed:
    raise ConfigError(f"{path} was measured with other settings than {source} has now ("
                      + "; ".join(changed)
                      + "). Rerun with --rerun_changed to set it aside (nothing is "
                      "deleted) and measure again, or use another --workdir.")
  moved = wd.set_aside(workdir, [name], "measured with other settings: " + "; ".join(changed))
  logging.warning("%s: other settings (%s); moved to %s, measuring again", path, "; ".join(changed),
                  moved)


def cached_json(workdir: str, name: str, compute: Callable[[], dict | list], *,
                settings: dict | None = None, valid: Callable[[object], bool] | None = None,
                what: str | None = None) -> dict | list:
  """`workdir/name`'s JSON if an earlier run left it with these `settings` and it is `valid`;
  else `compute()`, written there (a dict with `settings` under "settings"). `what` names the
  step in the log line of a reuse ("WHAT: reusing PATH"); `compute` logs its own work."""
  path = os.path.join(workdir, name)

  def matches(data) -> bool:
    if settings is not None and (not isinstance(data, dict)
                                 or data.get(SETTINGS) != _as_json(settings)):
      return False
    return valid is None or valid(data)

  data = wd.reuse_json(workdir, name, matches)
  if data is not None:
    logging.info("%s: reusing %s", what or name, path)
    return data
  data = compute()
  if settings is not None:
    data = {**data, SETTINGS: _as_json(settings)}
  wd.write_json(path, data)
  return data


@dataclasses.dataclass(frozen=True)
class Section:
  """A report's section: its title, its body's lines, and a one-line answer for the report's
  list of answers (None: the section answers no question)."""
  title: str
  body: Sequence[str]
  answer: str | None = None


def render(head: Sequence[str], sections: Sequence[Section], answers_title: str = "Answers") -> str:
  """The report's markdown: the header, the numbered answers (if any section has one), then
  each section under its `##` title."""
  lines = list(head)
  answered = [s for s in sections if s.answer is not None]
  if answered:
    lines += [f"## {answers_title}", ""]
    lines += [f"{i}. **{s.title}** {s.answer}" for i, s in enumerate(answered, 1)] + [""]
  for s in sections:
    lines += [f"## {s.title}", "", *s.body]
    if s.body and s.body[-1] != "":
      lines.append("")
  return "\n".join(lines)
