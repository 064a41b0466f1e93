"""`bottleneck.analysis.along_run`: evaluations along a run, the point chosen on the validation
split, and a difference with its interval at every point."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from bottleneck.analysis import along_run, intervals, plots
from bottleneck.util import workdir as wd

LABELS = np.arange(40) % 10


def _run(path, right: dict[int, int], validation: dict[int, float]):
  """A workdir evaluated at steps 10, 20, 30: `right[step]` of the 40 test examples right;
  validation accuracy `validation[step]`."""
  os.makedirs(os.path.join(path, wd.EVALUATIONS))
  rows = []
  for step in (10, 20, 30):
    rows.append({"step": step, "split": "train", "loss": 1.0, "train_time_s": step / 10})
    predicted = np.where(np.arange(40) < right[step], LABELS, (LABELS + 1) % 10)
    wd.write_predictions(os.path.join(path, wd.EVALUATIONS, f"eval-{step}.npz"), predicted, LABELS)
    rows.append({
        "step": step, "split": "eval", "accuracy": right[step] / 40, "loss": 0.5,
        "train_time_s": step / 10
    })
    rows.append({
        "step": step, "split": "validation", "accuracy": validation[step], "loss": 0.6,
        "train_time_s": step / 10
    })
  with open(os.path.join(path, wd.METRICS), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  return str(path)


def test_the_point_is_chosen_on_validation_and_differences_come_with_intervals(tmp_path, caplog):
  naive = [
      _run(tmp_path / f"n{s}", {10: 20 + s, 20: 30 + s, 30: 36 + s}, {10: 0.5, 20: 0.8, 30: 0.8})
      for s in range(3)
  ]
  reduced = [
      _run(tmp_path / f"r{s}", {10: 24 - s, 20: 29 + s, 30: 30}, {10: .4, 20: .7, 30: .9})
      for s in range(3)
  ]
  table = along_run.evaluations(naive[0])
  assert table.columns.tolist() == [
      "step", "train_time_s", "eval_accuracy", "validation_accuracy", "eval_loss", "validation_loss"
  ]
  assert table["step"].tolist() == [10, 20, 30] and table["train_time_s"].tolist() == [1, 2, 3]
  # Validation accuracy first reaches its best at step 20 (the test split's best is later).
  assert along_run.chosen_step(table) == 20
  assert along_run.chosen_step(along_run.evaluations(reduced[0])) == 30
  assert along_run.chosen_step(table.drop(columns="validation_accuracy")) is None
  frame = along_run.difference_along_run(naive, reduced)
  assert frame["step"].tolist() == [10, 20, 30]
  correct = lambda runs, step: np.asarray([np.arange(40) < r for r in runs[step]])
  for step, row in zip((10, 20, 30), frame.itertuples()):
    a = correct({10: [20, 21, 22], 20: [30, 31, 32], 30: [36, 37, 38]}, step)
    b = correct({10: [24, 23, 22], 20: [29, 30, 31], 30: [30, 30, 30]}, step)
    expected = intervals.difference_interval(a, b)
    assert row.difference == pytest.approx(expected.difference)
    assert (row.low, row.high) == pytest.approx((expected.low, expected.high))
    assert row.verdict == intervals.verdict(expected)
  assert frame["verdict"].iloc[-1] == "naive more accurate"
  # A run without a point's evaluation leaves that point out.
  os.remove(os.path.join(reduced[1], wd.EVALUATIONS, "eval-20.npz"))
  assert along_run.difference_along_run(naive, reduced)["step"].tolist() == [10, 30]
  # So does an unreadable one, with a warning (it raised CorruptFile: the report stopped).
  with open(os.path.join(naive[2], wd.EVALUATIONS, "eval-30.npz"), "r+b") as f:
    f.truncate(100)
  assert along_run.difference_along_run(naive, reduced)["step"].tolist() == [10]
  assert re.search(r"eval-30.npz is unreadable .* step 30 is left out", caplog.text)
  for draw, args in ((plots.difference_along_run, (frame, "naive - reduced")),
                     (plots.accuracy_along_time, ({
                         "naive": [along_run.evaluations(w) for w in naive],
                         "reduced": [along_run.evaluations(w) for w in reduced]
                     },))):
    path = draw(*args, str(tmp_path / f"{draw.__name__}.png"))
    assert os.path.getsize(path) > 0


def test_a_run_without_evaluations_has_an_empty_table(tmp_path):
  os.makedirs(tmp_path / "run")
  table = along_run.evaluations(str(tmp_path / "run"))
  assert isinstance(table, pd.DataFrame) and table.empty
  assert along_run.chosen_step(table) is None
