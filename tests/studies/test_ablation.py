"""The ablation study report: its answers from result.json files the test writes itself, the
--study flag, and the study end to end on a tiny sweep."""

import os
import re
import shlex
import sys
import types

import pandas as pd
import pytest

from bottleneck.analysis import markdown
from bottleneck.studies import ablation
from bottleneck.train import sweep
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError
from configs import study
from experiments import report as report_entry
from tests import ROOT, tiny_train_config


def write_run(root, name, *, reduce, seed, acc, macs=1000, params=100, **kwargs):
  match = kwargs.pop("match", None)
  wd.write_json(
      os.path.join(root, f"{name},seed={seed}", wd.RESULT), {
          "model": "toy", "dataset": "digits", "reduce": reduce, "seed": seed, "params": params,
          "macs": macs, "flops_xla": 2.5 * macs, "eval_accuracy": acc, "train_time_s": 10.0,
          "examples_per_s": 100.0, "compile_time_s": 1.0, "device": "cpu", "match": match,
          "num_classes": 10, "config": {"model_kwargs": kwargs}
      })


def write_study(root):
  iso = os.path.join(root, "iso_macs")
  for budget, naive, reduced in ((1e6, [0.90, 0.91,
                                        0.92], [0.95, 0.96,
                                                0.97]), (3e6, [0.95, 0.96,
                                                               0.97], [0.951, 0.958, 0.969])):
    for variant, accs in (("naive", naive), ("reduced", reduced)):
      for seed, acc in enumerate(accs):
        write_run(
            iso, f"{variant},{budget:g}", reduce=variant == "reduced", seed=seed, acc=acc, match={
                "metric": "macs", "budget": budget, "width": 0.5, "cost": budget,
                "replaced_width": None
            })
  for seed, acc in enumerate([0.95, 0.96, 0.97, 0.955, 0.962, 0.968]):  # the A/A check
    write_run(
        iso, "aa", reduce=True, seed=seed, acc=acc, match={
            "metric": "macs", "budget": 0.67e6, "width": 0.5, "cost": 0.67e6, "replaced_width": None
        })
  ratio = os.path.join(root, "ablation_ratio")
  for r, relu, linear in ((0.125, [0.80, 0.81, 0.82], [0.70, 0.72,
                                                       0.71]), (1.0, [0.95, 0.96,
                                                                      0.97], [0.95, 0.96, 0.97])):
    for act, accs in ((True, relu), (False, linear)):
      for seed, acc in enumerate(accs):
        write_run(ratio, f"r={r},act={act}", reduce=True, seed=seed, acc=acc, macs=int(1000 * r),
                  reduction_ratio=r, reduction_activation=act)
  placement = os.path.join(root, "ablation_placement")
  for seed, acc in enumerate([0.95, 0.96, 0.97]):
    write_run(ratio, "naive", reduce=False, seed=seed, acc=acc, macs=2000)
    write_run(placement, "naive", reduce=False, seed=seed, acc=acc, macs=2000)
    write_run(placement, "3x3", reduce=True, seed=seed, acc=acc - 0.05, macs=1500,
              reduction_places="3x3")
    write_run(placement, "5x5", reduce=True, seed=seed, acc=0.12 + seed / 100, macs=1500,
              reduction_places="5x5")  # a network that did not learn: said first
  wd.write_json(os.path.join(placement, "places=pool,seed=0", wd.ERROR),
                {"error": "ConfigError: a made-up failure", "traceback": ""})
  ratios = [{
      "name": "inception_3a", "ratio": r, "batch": 32, "dtype": "float32", "MACs naive/reduced": m,
      "time naive/reduced": t, "time saved": "yes"
  } for r, m, t in ((0.125, 5.2, 2.3), (0.5, 1.6, 1.2), (1.0, 0.83, 0.66))]
  wd.write_json(os.path.join(root, ablation.BENCHMARK), {"rows": [], "ratios": ratios})


def test_the_report_answers_each_question_from_the_results(tmp_path):
  write_study(str(tmp_path))
  text = open(ablation.write(str(tmp_path), "quick", study), encoding="utf-8").read()
  answers = text.split("## Answers")[1].split("\n## ")[0]
  # 1. equal compute: reduced ahead by 5 points at 1M, within noise at 3M.
  assert ("Naive against reduced at 2 MAC budget(s): reduced more accurate at 1, within noise "
          "at 1") in answers
  assert "macs 1e+06: -5.00 [-5.00, -5.00]" in answers
  # 2. activation: ReLU ahead at 1/8, identical at 1.
  assert "relu more accurate at 1, within noise at 1" in answers
  assert "ratio 0.125: +10.00" in answers
  # 3. how far: naive ahead of ratio 1/8, not of ratio 1.
  assert ("With the ReLU, the smallest ratio not measurably less accurate than naive is 1 "
          "(2.00x fewer MACs); at 0.125 naive is more accurate.") in answers
  # 4. placement: the 3x3 reduction alone costs 5 points here; 2000/1500 MACs.
  assert "3x3: +5.00 (naive more accurate, 1.33x fewer MACs)" in answers
  assert ("**Which reduction matters?** **Warning: 1 group(s) did not learn** (accuracy below "
          "twice chance: variant reduced, places 5x5)") in answers
  # 5. time: from the benchmark's ratios.
  assert "inception_3a (batch 32, float32): the reduced block stops being faster at ratio 1" \
      in answers
  assert "- places=pool,seed=0: ConfigError: a made-up failure" in text
  # 6. the A/A check: seeds 0-2 against 3-5 of one config
  assert ("one config (reduced at macs 6.7e+05) under two disjoint seed sets: -0.17 points, "
          "95% interval [-1.04, +0.71]") in answers
  assert "over the seeds only (no per-example predictions): within noise, as it must be." \
      in answers
  assert "42 training runs finished, 1 failed" in text
  for name in ablation.SWEEPS:
    assert os.path.exists(tmp_path / f"{name}.png") and f"({name}.png)" in text


def test_missing_parts_are_said_not_raised(tmp_path):
  text = open(ablation.write(str(tmp_path), "", study), encoding="utf-8").read()
  assert text.count("not measured") == 6  # five questions and the A/A check


def test_study_flag_values():
  assert ablation.parse_study("ablation", study) == ""
  assert ablation.parse_study("ablation:cluttered,quick", study) == "cluttered,quick"
  # Issue 23 spells it as its directory is named; the same variant, written with commas.
  assert ablation.parse_study("ablation:fashion_quick", study) == "fashion,quick"
  assert ablation.parse_study("ablation:quick,fashion", study) == "fashion,quick"  # one spelling
  assert [
      report_entry.default_workdir(ablation.parse_study(s, study))
      for s in ("ablation", "ablation:quick", "ablation:quick_fashion", "ablation:cluttered,quick")
  ] == [
      "runs/ablation", "runs/ablation_quick", "runs/ablation_fashion_quick",
      "runs/ablation_cluttered_quick"
  ]
  with pytest.raises(ConfigError, match=r"--study=ablation:fashion_quik: unknown variant 'quik'"):
    ablation.parse_study("ablation:fashion_quik", study)
  with pytest.raises(ConfigError, match=r"'quick' given twice"):
    ablation.parse_study("ablation:quick_quick", study)
  with pytest.raises(ConfigError, match=r"unknown study 'ablations'; valid: ablation"):
    ablation.parse_study("ablations", study)
  with pytest.raises(ConfigError, match=r"--study=ablation:fast: unknown variant 'fast'"):
    ablation.parse_study("ablation:fast", study)


def _tiny_study(name, digits_dir, sweep_list, monkeypatch) -> str:
  module = types.ModuleType(name)
  module.get_config = lambda arg="": tiny_train_config.get_config(data_dir=digits_dir,
                                                                  num_train_steps=4)
  module.get_sweep = lambda arg="": sweep_list
  monkeypatch.setitem(sys.modules, name, module)
  return name


def test_the_study_end_to_end_on_a_tiny_sweep(tmp_path, digits_dir, monkeypatch):
  """build(): every sweep run (the seeds of a config as one program), the benchmark's JSON
  reused, ABLATION.md written; a second build reuses every run. (The placement sweep is empty
  here: its section says it was not measured.)"""
  seeds = (0, 1)
  modules = {
      "iso_macs": _tiny_study("tiny_iso", digits_dir,
                              [{"reduce": r, "seed": s} for r in (True, False) for s in seeds],
                              monkeypatch),
      "ablation_ratio": _tiny_study(
          "tiny_ratio", digits_dir,
          [{"model_kwargs.reduction_activation": a, "seed": s} for a in (True, False) for s in seeds
          ] + [{"reduce": False, "seed": s} for s in seeds], monkeypatch),
      "ablation_placement": _tiny_study("tiny_none", digits_dir, [], monkeypatch)
  }
  wd.write_json(str(tmp_path / ablation.BENCHMARK),
                {"rows": [], "ratios": [], "settings": ablation.benchmark_settings(study)})
  path = ablation.build(str(tmp_path), "quick", study, modules=modules)
  text = open(path, encoding="utf-8").read()
  assert "10 training runs finished, 0 failed" in text
  for name in ("iso_macs", "ablation_ratio"):
    result = wd.read_json(str(tmp_path / name / "reduce=False,seed=1" / wd.RESULT))
    assert result["seeds_together"] == [0, 1]
  assert "**Does the ReLU after the 1x1 help?** ReLU against a linear 1x1 at 1 ratio(s)" in text
  assert "**Which reduction matters?** not measured: no run of `ablation_placement`" in text
  assert not os.path.exists(wd.LOCK)  # an empty sweep locks nothing (not the current dir)
  mtime = os.path.getmtime(tmp_path / "iso_macs" / "reduce=False,seed=1" / wd.RESULT)
  ablation.build(str(tmp_path), "quick", study, modules=modules)
  assert os.path.getmtime(tmp_path / "iso_macs" / "reduce=False,seed=1" / wd.RESULT) == mtime


def test_a_corrupt_benchmark_file_is_set_aside_and_timed_again(tmp_path, monkeypatch):
  from bottleneck.measure import benchmark
  (tmp_path / ablation.BENCHMARK).write_text('{"rows": [')  # cut short by a crash
  calls = []
  monkeypatch.setattr(benchmark, "run", lambda *a, **k: calls.append(k) or [])
  out = ablation._benchmark(str(tmp_path), study)
  assert calls and calls[0]["ratios"] == [0.125, 0.25, 0.5, 0.75, 1.0]
  assert wd.read_json(str(tmp_path / ablation.BENCHMARK)) == out == {
      "rows": [], "ratios": [], "settings": ablation.benchmark_settings(study)
  }
  assert len(os.listdir(tmp_path / wd.SET_ASIDE)) == 1  # the cut-short file, kept
  ablation._benchmark(str(tmp_path), study)
  assert len(calls) == 1  # reused, not timed again


def test_a_benchmark_measured_with_other_settings_is_refused_or_remeasured(tmp_path, monkeypatch):
  """Edited configs/benchmark.py:ratio settings used to be ignored ("reusing ..."): now the
  kept JSON is refused like a changed sweep point, before any sweep runs, and --rerun_changed
  sets it aside and measures again."""
  from bottleneck.measure import benchmark
  settings = ablation.benchmark_settings(study)
  wd.write_json(str(tmp_path / ablation.BENCHMARK),
                {"rows": [], "ratios": [], "settings": settings})
  edited = {**settings, "ratios": [0.5, 1.0], "repeats": 7}
  monkeypatch.setattr(ablation, "benchmark_settings", lambda plan: edited)
  monkeypatch.setattr(sweep, "run_module",
                      lambda *a, **k: pytest.fail("a sweep ran before the check"))
  with pytest.raises(
      ConfigError, match=r"benchmark_ratio.json was measured with other settings"
      r".*repeats 3 -> 7; ratios .* -> \[0.5, 1.0\]"
      r".*--rerun_changed"):
    ablation.build(str(tmp_path), "quick", study)
  calls = []
  monkeypatch.setattr(benchmark, "run", lambda *a, **k: calls.append(k) or [])
  markdown.refuse_changed(str(tmp_path), ablation.BENCHMARK, edited, True, "the config")
  out = ablation._benchmark(str(tmp_path), study)
  assert calls[0]["ratios"] == [0.5, 1.0] and calls[0]["repeats"] == 7
  assert out["settings"] == edited
  assert len(os.listdir(tmp_path / wd.SET_ASIDE)) == 1  # the old measurement, kept
  markdown.refuse_changed(str(tmp_path), ablation.BENCHMARK, edited, False, "the config")


def test_the_made_by_command_runs_as_shown_with_an_odd_workdir(tmp_path):
  """A workdir with spaces and brackets: the command ABLATION.md shows is shell-quoted."""
  work = tmp_path / "runs [2] my study"
  work.mkdir()
  text = open(ablation.write(str(work), "quick", study), encoding="utf-8").read()
  command = re.search(r"Made by `([^`]+)`", text).group(1)
  assert shlex.split(command)[-1] == f"--workdir={work}"
  assert shlex.split(command)[3] == "--study=ablation:quick"


@pytest.mark.parametrize("spec,match", [("ablation:", r"nothing after ':'"),
                                        ("ablation:quick,quick", r"'quick' given twice"),
                                        ("ablation:quick,", r"an empty variant in 'quick,'")])
def test_empty_and_repeated_variants_are_refused(spec, match):
  with pytest.raises(ConfigError, match=match):
    ablation.parse_study(spec, study)


def test_parallel_below_one_is_refused_before_anything_is_written(tmp_path):
  from bottleneck.studies import report
  for build in (lambda w: ablation.build(w, "quick", study, parallel=0),
                lambda w: report.build_report(w, parallel=0)):
    with pytest.raises(ConfigError, match=r"parallel=0 is invalid; it must be a whole number"):
      build(str(tmp_path / "new"))
    assert not os.path.exists(tmp_path / "new")


def test_the_data_line_names_the_test_images_scored():
  assert "scored on all 10,000 test images" in ablation._data_line("fashion", study)
  assert "scored on the test images `test[:2000]`" in ablation._data_line("fashion,quick", study)


def test_the_study_registry_names_each_study_once_and_refuses_another():
  from bottleneck.studies import registry
  assert registry.find("ablation:fashion,quick").module == "bottleneck.studies.ablation"
  with pytest.raises(
      ConfigError, match=r"unknown study 'ablations'; valid: ablation \(with a "
      r"variant: ablation:quick, ablation:cluttered, ablation:cluttered,quick"):
    registry.find("ablations")
  titles = [m.title for m in registry.made()]
  assert len(titles) == len(set(titles)) and all(
      os.path.exists(os.path.join(ROOT, m.doc)) for m in registry.made())


def test_a_study_variant_has_one_spelling_whatever_it_was_given_as():
  for spec in ("ablation:fashion_quick", "ablation:quick,fashion", "ablation:quick=true,fashion",
               "ablation:fashion,quick=1"):
    assert ablation.parse_study(spec, study) == "fashion,quick"
  assert ablation.parse_study("ablation:quick=false", study) == ""
  with pytest.raises(ConfigError, match=r"quick='maybe': give true or false"):
    ablation.parse_study("ablation:quick=maybe", study)


def test_runs_evaluated_along_training_get_their_verdict_at_every_point(tmp_path):
  """The equal-compute question's lines along training: naive minus reduced at every point
  with its figure, the verdict at the end and at the step where the runs' mean validation
  accuracy stops improving, and accuracy against training time. None for runs scored once."""
  from tests.analysis.test_along_run import _run
  sweep_dir = tmp_path / "iso_macs"
  rows = []
  for s in range(3):
    for variant, right, validation in (("naive", {10: 20 + s, 20: 30 + s,
                                                  30: 36 + s}, {10: .5, 20: .8, 30: .8}),
                                       ("reduced", {10: 24 - s, 20: 29 + s,
                                                    30: 30}, {10: .4, 20: .7, 30: .7})):
      run = f"reduce={variant == 'reduced'},seed={s}"
      _run(sweep_dir / run, right, validation)
      rows.append({"budget": "macs 1e+06", "variant": variant, "seed": s, "run": run})
  runs = pd.DataFrame(rows)
  lines = ablation.along_the_run(str(sweep_dir), runs, str(tmp_path), "iso_macs")
  text = "\n".join(lines)
  assert ("Along training at macs 1e+06, naive - reduced (3 seeds, 3 points): at the end "
          "(step 30) ") in text
  assert "naive more accurate; at step 20, where validation accuracy stopped improving: " in text
  for figure in ("iso_macs_along_0.png", "iso_macs_along_time.png"):
    assert f"]({figure})" in text and (tmp_path / figure).stat().st_size > 0
  # Another contrast, grouped by another knob: linear against ReLU at each ratio.
  ratios = runs.assign(ratio=0.125,
                       activation=runs["variant"].map({"naive": "relu",
                                                       "reduced": "linear"})).drop(columns="budget")
  text = "\n".join(
      ablation.along_the_run(str(sweep_dir), ratios, str(tmp_path), "ratio", "ratio",
                             ("activation", "relu", "linear")))
  assert "Along training at ratio 0.125, relu - linear (3 seeds, 3 points)" in text
  assert "relu more accurate" in text and "](ratio_along_0.png)" in text
  # Validation accuracy still rising at the last point: no earlier point is chosen.
  rising = tmp_path / "rising"
  for row in rows:
    _run(rising / row["run"], {10: 20, 20: 30, 30: 36}, {10: .5, 20: .7, 30: .8})
  text = "\n".join(ablation.along_the_run(str(rising), runs, str(tmp_path), "rising"))
  assert "highest at the last point, so no earlier one is chosen" in text
  assert "where validation accuracy stopped improving" not in text
  for step in (20, 30):  # scored once: nothing to say along training
    for run in runs["run"]:
      for split in ("eval", "validation"):
        path = sweep_dir / run / wd.EVALUATIONS / f"{split}-{step}.npz"
        if path.exists():
          path.unlink()
  metrics = [sweep_dir / run / wd.METRICS for run in runs["run"]]
  for m in metrics:
    m.write_text("\n".join(line for line in m.read_text().splitlines() if '"step": 10' in line))
  assert ablation.along_the_run(str(sweep_dir), runs, str(tmp_path), "iso_macs") == []
