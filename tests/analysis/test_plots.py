"""Plots are written as PNG files from runs and their metrics."""

import os

from bottleneck.analysis import plots, results
from bottleneck.util import workdir as wd
from tests import write_runs


def test_plots_are_written(tmp_path):
  write_runs(tmp_path)
  runs = results.collect(str(tmp_path))
  for run in runs["run"]:
    wd.truncate_jsonl(
        str(tmp_path / run / wd.METRICS),
        [{"step": 10, "split": "train", "loss": 1.0}, {"step": 20, "split": "train", "loss": 0.5},
         {"step": 20, "split": "eval", "loss": 0.6, "accuracy": 0.8}])
  for path in (plots.accuracy_vs_cost(runs, str(tmp_path / "a.png")),
               plots.training_curves(str(tmp_path), runs, str(tmp_path / "c.png"))):
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10_000


def test_legend_counts_runs_per_point_as_a_range_when_they_differ():
  assert plots.runs_label([5, 5, 5]) == "n=5"
  # The A/A check trains the middle budget under 10 seeds, the other budgets under 5.
  assert plots.runs_label([5, 10, 5]) == "n=5-10"
