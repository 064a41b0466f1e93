"""The one-command report, end to end on a tiny sweep, and its computed finding."""

import os

import pandas as pd

from bottleneck.studies import report
from bottleneck.train import saved_models
from bottleneck.util import workdir as wd
from tests.numerics import network_rtol

TINY = dict(sweep_config="tests.tiny_sweep_config", models=("inception_small",),
            benchmark_cases=("flatten_head_cnn@8",), benchmark_batch=2, benchmark_repeats=1,
            fc_config="tests.tiny_fc_config")


def test_report_end_to_end_and_rerun_reuses_work(tmp_path, digits_dir):
  path = report.build_report(str(tmp_path), data_dir=digits_dir, **TINY)
  text = open(path).read()
  for part in ("## Finding", "## Cost: parameters", "## Time on real block sizes",
               "## Accuracy and time: small Inception on the digits", "## 1x1 = fully connected",
               "## Other studies"):
    assert part in text, part
  assert "### inception_small" in text and "XLA FLOPs" in text
  assert "accuracy_vs_cost.png" in text and os.path.exists(tmp_path / "curves.png")
  assert "benchmark/time_vs_macs.png" in text and "fully_conv/heatmaps.png" in text
  assert "jax " in text and "Machine:" in text
  # The finding agrees with the report's own numbers: the block time ratio is the table's,
  # the score map matches the crops.
  bench = wd.read_json(str(tmp_path / "benchmark" / "benchmark.json"))
  (pair,) = bench["ratios"]
  assert f"{pair['MACs naive/reduced']:.2f}x fewer multiply-adds" in text
  fc = wd.read_json(str(tmp_path / "fully_conv" / "fully_conv.json"))
  fc_model = saved_models.load(str(tmp_path / "fully_conv" / "train")).model
  assert fc["max_abs_diff_vs_crops"] <= network_rtol(fc_model, 5) * fc["max_abs_score"]
  assert f"as a {fc['score_map_shape'][0]}x{fc['score_map_shape'][1]} map" in text
  result = tmp_path / "digits" / "reduce=True,seed=0" / "result.json"
  fc_result = tmp_path / "fully_conv" / "train" / "result.json"
  maps = [tmp_path / "fully_conv" / "fully_conv.json", *fc["files"]]
  before = {p: os.path.getmtime(p) for p in (result, fc_result, *maps)}
  # A file cut short by a kill is set aside and computed again, not a traceback; finished
  # work (the runs, the score maps and their figures) is reused.
  for cut in (tmp_path / "complexity" / "inception_small.json",
              tmp_path / "benchmark" / "benchmark.json"):
    cut.write_text(cut.read_text()[:100])
  report.build_report(str(tmp_path), data_dir=digits_dir, **TINY)
  assert {p: os.path.getmtime(p) for p in before} == before
  assert wd.read_json(str(tmp_path / "complexity"
                          / "inception_small.json"))[0]["total"]["params"] > 0
  assert wd.read_json(str(tmp_path / "benchmark" / "benchmark.json"))["verdict"]
  assert len(os.listdir(tmp_path / wd.SET_ASIDE)) == 2
  assert os.stat(tmp_path / "REPORT.md").st_mode & 0o044 == 0o044  # others may read it


def test_finding_is_computed_from_the_numbers():
  summary = pd.DataFrame([{
      "variant": "reduced", "eval_accuracy mean": 0.98, "eval_accuracy std": 0.01,
      "train_time_s mean": 12.0, "n": 3
  }, {
      "variant": "naive", "eval_accuracy mean": 0.975, "eval_accuracy std": 0.002,
      "train_time_s mean": 10.0, "n": 3
  }])
  ratio = {
      "params naive/reduced": 1.5, "MACs naive/reduced": 1.49,
      "accuracy naive - reduced (points)": -0.5, "95% interval (points)": "[-1.90, +0.90]",
      "interval covers": "seeds + test set", "verdict": "within noise"
  }
  text = report.digits_clause(summary, ratio)
  assert "cut parameters 1.50x and multiply-adds 1.49x" in text
  assert "98.00% with them and 97.50% without" in text
  # The sign of the tables' "accuracy naive - reduced" column, and the calibrated verdict.
  assert ("naive minus reduced -0.50 points, 95% interval [-1.90, +0.90] over the seeds + "
          "test set: within noise") in text
  assert "did not turn into a saving in time on this small network" in text
  # Against real blocks that did save time, the sentence says so instead of generalizing.
  assert "on real block sizes (above) the reductions did save time" in \
      report.digits_clause(summary, ratio, blocks_saved_time=True)
  assert "real block sizes" not in report.digits_clause(summary, ratio, blocks_saved_time=False)
  summary.loc[0, "train_time_s mean"] = 5.0
  summary.loc[1, "eval_accuracy std"] = 0.001
  summary.loc[0, "eval_accuracy std"] = 0.001
  text = report.digits_clause(
      summary,
      {**ratio, "95% interval (points)": "[-0.90, -0.10]", "verdict": "reduced more accurate"})
  assert "[-0.90, -0.10] over the seeds + test set: reduced more accurate" in text
  assert "did turn into" in text
  summary["train_time_s std"] = [0.4, 0.7]  # 11.5 vs 11.7 s: inside the spread
  summary.loc[0, "train_time_s mean"], summary.loc[1, "train_time_s mean"] = 11.5, 11.7
  text = report.digits_clause(summary, ratio)
  assert "within the seed-to-seed spread (0.7 s): no measurable saving in time" in text


def test_finding_with_an_unknown_time_compares_no_time():
  summary = pd.DataFrame([{
      "variant": "reduced", "eval_accuracy mean": 0.98, "eval_accuracy std": 0.01,
      "train_time_s mean": float("nan"), "n": 1
  }, {
      "variant": "naive", "eval_accuracy mean": 0.975, "eval_accuracy std": 0.002,
      "train_time_s mean": 10.0, "n": 1
  }])
  text = report.digits_clause(summary, {"params naive/reduced": 1.5, "MACs naive/reduced": 1.49})
  assert "training time of one variant is unknown" in text and "nan" not in text
  assert "naive minus reduced -0.50 points, no interval (fewer than 2 seeds paired)" in text


def test_the_a_a_clause_compares_the_reduced_config_with_itself():
  """The report's A/A check: seed sets paired in order; its verdict must hold 0, and a miss
  is said as a warning on the comparison's interval, not hidden."""
  acc = {0: 0.97, 1: 0.98, 2: 0.975, 3: 0.972, 4: 0.981, 5: 0.976}
  runs = pd.DataFrame([{"variant": "reduced", "seed": s, "eval_accuracy": a}
                       for s, a in acc.items()]
                      + [{"variant": "naive", "seed": 0, "eval_accuracy": 0.5}])
  text = report.aa_clause(runs, (0, 1, 2), (3, 4, 5))
  # seeds 0,1,2 minus 3,4,5: (-0.2 - 0.1 - 0.1) / 3 = -0.13 points, over the seeds alone here
  assert text.startswith("An A/A check (the reduced config, seeds 0,1,2 against 3,4,5): -0.13 "
                         "points, 95% interval [")
  assert "within noise, as it must be." in text
  runs.loc[runs["seed"] >= 3, "eval_accuracy"] -= 0.05  # a true difference: the check fails
  assert "read its verdict with care" in report.aa_clause(runs, (0, 1, 2), (3, 4, 5))
  assert "not measured" in report.aa_clause(runs[runs["seed"] != 4], (0, 1, 2), (3, 4))
  assert report.aa_clause(runs, (0, 1, 2), ()) is None  # the sweep has no second set
  assert "An A/A check" in report.finding(
      summary=pd.DataFrame([{
          "variant": v, "eval_accuracy mean": 0.9, "eval_accuracy std": 0.0, "n": 3,
          "train_time_s mean": 1.0
      } for v in ("reduced", "naive")]),
      ratio_row={"params naive/reduced": 1.5,
                 "MACs naive/reduced": 1.5}, aa=report.aa_clause(runs, (0, 1, 2), (3, 4, 5)))


def test_the_finding_has_a_clause_per_part_each_from_its_numbers():
  cplx = {
      "googlenet": [{"reduce": True, "total": {"params": 7e6, "macs": 1.6e9}},
                    {"reduce": False, "total": {"params": 97e6, "macs": 12.6e9}}]
  }
  bench = {
      "ratios": [{
          "name": "inception_3a", "batch": 32, "MACs naive/reduced": 2.37, "time naive/reduced": 1.6
      }, {"name": "v3_block_b", "batch": 32, "MACs naive/reduced": 1.73, "time naive/reduced": 1.2}]
  }
  fc = {
      "input_shape": [1, 32, 32, 1], "score_map_shape": [13, 13, 10], "max_abs_diff_vs_crops": 2e-7,
      "crops_checked": 9, "digits": [{"label": 3, "predicted": 3}, {"label": 5, "predicted": 6}]
  }
  text = report.finding(cplx=cplx, bench=bench, fc=fc)
  assert "googlenet's parameters 13.9x and its multiply-adds 7.9x" in text
  # geometric means: sqrt(2.37 x 1.73) = 2.02, sqrt(1.6 x 1.2) = 1.39
  assert "2.02x fewer multiply-adds cut forward+backward time 1.39x" in text
  assert "as a 13x13 map" in text and "named 1 of the 2 digits" in text
  slow = {"ratios": [dict(bench["ratios"][0], **{"time naive/reduced": 0.9})]}
  assert "did not save forward+backward time (0.90x)" in report.finding(bench=slow)


def test_the_blocks_are_timed_again_when_the_benchmark_settings_change(tmp_path, monkeypatch):
  """benchmark.json is reused only for the cases, batch and repeats it was timed with."""
  from bottleneck.measure import benchmark
  calls = []

  def run(cases, batches, repeats):
    calls.append((tuple(cases), batches, repeats))
    return [{"name": c, "reduce": r} for c in cases for r in (True, False)]

  monkeypatch.setattr(benchmark, "run", run)
  monkeypatch.setattr(benchmark, "timed", lambda rows: [])
  monkeypatch.setattr(benchmark, "central_ratios", lambda rows: [])
  monkeypatch.setattr(benchmark, "verdict", lambda ratios: "a verdict")
  work = str(tmp_path)
  report._benchmark(work, ("a",), 2, 1)
  report._benchmark(work, ("a",), 2, 1)
  assert calls == [(("a",), [2], 1)]  # reused
  for cases, batch, repeats in ((("a",), 2, 3), (("a",), 4, 3), (("a", "b"), 4, 3)):
    out = report._benchmark(work, cases, batch, repeats)
    assert calls[-1] == (cases, [batch], repeats)
    assert out["settings"] == {"cases": list(cases), "batch": batch, "repeats": repeats}
  assert len(calls) == 4 and len(os.listdir(tmp_path / wd.SET_ASIDE)) == 3


def test_score_maps_are_reused_while_their_classifier_and_figures_are(tmp_path, monkeypatch):
  from bottleneck.studies import fully_conv
  from bottleneck.train import loop
  trained = {"eval_accuracy": 0.9, "train_steps": 5, "train_time_s": 2.0}
  calls = []

  def maps(run_dir, size, out_dir):
    calls.append(size)
    os.makedirs(out_dir, exist_ok=True)
    figure = os.path.join(out_dir, "heatmaps.png")
    open(figure, "w").close()
    return {"files": [figure], "stride": 2}

  monkeypatch.setattr(loop, "train_and_evaluate", lambda config, run_dir: dict(trained))
  monkeypatch.setattr(fully_conv, "run", maps)
  out = report._fully_conv(str(tmp_path), "tests.tiny_fc_config", None)
  assert out["eval_accuracy"] == 0.9 and calls == [report.FC_SIZE]
  report._fully_conv(str(tmp_path), "tests.tiny_fc_config", None)
  assert len(calls) == 1  # reused
  os.remove(out["files"][0])  # a figure gone: made again
  report._fully_conv(str(tmp_path), "tests.tiny_fc_config", None)
  trained["train_time_s"] = 3.0  # a classifier trained again: its maps too
  report._fully_conv(str(tmp_path), "tests.tiny_fc_config", None)
  assert len(calls) == 3 and os.path.exists(out["files"][0])
