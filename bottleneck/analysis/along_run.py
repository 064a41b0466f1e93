"""Accuracy along a run, and comparisons at every evaluation point (docs/training.md, "Accuracy
along the run").

A run evaluated along the way (`eval_every_epochs`, `validation_split`) has a metrics row and a
predictions file (`evaluations/<split>-<step>.npz`) per split and point. `evaluations` tables
them; `chosen_step` picks the point to report on the validation rows alone (where validation
accuracy stops improving); `difference_along_run` gives two configs' accuracy difference, with
its interval over seeds and test examples, at every point both reached.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from absl import logging

from bottleneck.analysis import intervals
from bottleneck.util import workdir as wd

SPLITS = ("eval", "validation")  # the test split's rows, and the held-out validation split's


def evaluations(workdir: str) -> pd.DataFrame:
  """One row per evaluation point of the run in `workdir`: step, training time so far, and
  for each split scored its accuracy and loss ("eval_accuracy", "validation_accuracy", ...)."""
  rows = [r for r in wd.read_metrics(os.path.join(workdir, wd.METRICS)) if r["split"] in SPLITS]
  if not rows:
    return pd.DataFrame(columns=["step", "train_time_s"])
  frame = pd.DataFrame(rows)
  wide = frame.pivot_table(index="step", columns="split", values=["accuracy", "loss"],
                           aggfunc="last")
  wide.columns = [f"{split}_{value}" for value, split in wide.columns]
  times = frame.groupby("step")["train_time_s"].last() if "train_time_s" in frame else None
  out = wide.reset_index()
  out.insert(1, "train_time_s", np.nan if times is None else out["step"].map(times))
  return out


def chosen_step(table: pd.DataFrame) -> int | None:
  """The point to report, chosen on the validation split alone: the first step at which
  validation accuracy reaches its highest value (later points never beat it, so accuracy has
  stopped improving there). None without validation rows."""
  if "validation_accuracy" not in table or table["validation_accuracy"].isna().all():
    return None
  best = table["validation_accuracy"].max()
  return int(table.loc[table["validation_accuracy"] == best, "step"].min())


def _outcomes(workdirs: list[str], split: str, step: int) -> np.ndarray | None:
  """(runs, examples) of 1 where run r predicted example i right at `step`; None when a run
  lacks that evaluation or the runs' labels differ."""
  correct, labels = [], None
  for w in workdirs:
    path = os.path.join(w, wd.EVALUATIONS, f"{split}-{step}.npz")
    if not os.path.exists(path):
      return None
    try:
      predicted, label = wd.read_predictions(path)
    except wd.CorruptFile as e:  # as a missing one, said: the rest of the report stands
      logging.warning("%s The difference at step %d is left out.", e, step)
      return None
    if labels is not None and not np.array_equal(label, labels):
      return None
    labels = label
    correct.append(predicted == label)
  return np.asarray(correct)


def difference_along_run(
    first: list[str], second: list[str], split: str = "eval",
    names: tuple[str, str] = ("naive", "reduced")) -> pd.DataFrame:
  """The accuracy of `first`'s runs minus `second`'s (points, seeds paired in order) at every
  step that each of them evaluated, with `intervals.difference_interval` (seeds and test
  examples) and its verdict."""
  steps = None
  for w in first + second:
    have = set(evaluations(w)["step"])
    steps = have if steps is None else steps & have
  rows = []
  for step in sorted(steps or ()):
    a, b = _outcomes(first, split, step), _outcomes(second, split, step)
    if a is None or b is None or a.shape != b.shape:
      continue
    interval = intervals.difference_interval(a, b)
    rows.append({
        "step": step, "difference": 100 * (a.mean() - b.mean()),
        "low": None if interval is None else interval.low,
        "high": None if interval is None else interval.high,
        "verdict": intervals.verdict(interval, *names)
    })
  return pd.DataFrame(rows, columns=["step", "difference", "low", "high", "verdict"])
