"""The one-command report, end to end on a tiny sweep, and its computed finding."""

import os

import pandas as pd

from bottleneck import report, workdir as wd


def test_report_end_to_end_and_rerun_reuses_work(tmp_path, digits_dir):
  path = report.build_report(str(tmp_path), sweep_config="tests.tiny_sweep_config",
                             models=("inception_small",))
  text = open(path).read()
  assert "## Finding" in text and "On the digits, the 1x1 reductions cut parameters" in text
  assert "### inception_small" in text and "XLA FLOPs" in text
  assert "accuracy_vs_cost.png" in text and os.path.exists(tmp_path / "curves.png")
  assert "jax " in text and "Machine:" in text
  result = tmp_path / "digits" / "reduce=True,seed=0" / "result.json"
  before = os.path.getmtime(result)
  # A complexity file cut short by a kill is set aside and computed again, not a traceback.
  cplx = tmp_path / "complexity" / "inception_small.json"
  cplx.write_text(cplx.read_text()[:100])
  report.build_report(str(tmp_path), sweep_config="tests.tiny_sweep_config",
                      models=("inception_small",))
  assert os.path.getmtime(result) == before
  assert wd.read_json(str(cplx))[0]["total"]["params"] > 0
  assert os.listdir(tmp_path / wd.SET_ASIDE)
  assert os.stat(tmp_path / "REPORT.md").st_mode & 0o044 == 0o044  # others may read it


def test_finding_is_computed_from_the_numbers():
  summary = pd.DataFrame([
      {"variant": "reduced", "eval_accuracy mean": 0.98, "eval_accuracy std": 0.01,
       "train_time_s mean": 12.0, "n": 3},
      {"variant": "naive", "eval_accuracy mean": 0.975, "eval_accuracy std": 0.002,
       "train_time_s mean": 10.0, "n": 3}])
  ratio = {"params naive/reduced": 1.5, "MACs naive/reduced": 1.49}
  text = report.finding(summary, ratio)
  assert "cut parameters 1.50x and multiply-adds 1.49x" in text
  assert "98.00% with them and 97.50% without" in text
  assert "+0.50 points, within the seed-to-seed spread (1.00)" in text
  assert "did not turn into a saving in time" in text
  summary.loc[0, "train_time_s mean"] = 5.0
  summary.loc[1, "eval_accuracy std"] = 0.001
  summary.loc[0, "eval_accuracy std"] = 0.001
  text = report.finding(summary, ratio)
  assert "beyond the seed-to-seed spread" in text and "did turn into" in text
  summary["train_time_s std"] = [0.4, 0.7]  # 11.5 vs 11.7 s: inside the spread
  summary.loc[0, "train_time_s mean"], summary.loc[1, "train_time_s mean"] = 11.5, 11.7
  text = report.finding(summary, ratio)
  assert "within the seed-to-seed spread (0.7 s): no measurable saving in time" in text


def test_finding_with_an_unknown_time_compares_no_time():
  summary = pd.DataFrame([
      {"variant": "reduced", "eval_accuracy mean": 0.98, "eval_accuracy std": 0.01,
       "train_time_s mean": float("nan"), "n": 1},
      {"variant": "naive", "eval_accuracy mean": 0.975, "eval_accuracy std": 0.002,
       "train_time_s mean": 10.0, "n": 1}])
  text = report.finding(summary, {"params naive/reduced": 1.5, "MACs naive/reduced": 1.49})
  assert "training time of one variant is unknown" in text and "nan" not in text
