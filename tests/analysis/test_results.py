"""Result tables from result.json files the test writes itself."""

import io
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from bottleneck.analysis import intervals, results, tables
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError
from tests import ACC, COST, write_runs


def test_aggregate_means_stds_and_counts(tmp_path):
  write_runs(tmp_path)
  runs = results.collect(str(tmp_path))
  assert len(runs) == 6 and set(runs["variant"]) == {"reduced", "naive"}
  summary = results.aggregate(runs).set_index("variant")
  for v in ("reduced", "naive"):
    assert summary.loc[v, "eval_accuracy mean"] == pytest.approx(np.mean(ACC[v]))
    assert summary.loc[v, "eval_accuracy std"] == pytest.approx(np.std(ACC[v], ddof=1))
    assert summary.loc[v, "n"] == 3
    assert summary.loc[v, "params"] == COST[v][0]


def test_ratios_naive_over_reduced(tmp_path):
  write_runs(tmp_path)
  r = results.ratios(results.aggregate(results.collect(str(tmp_path)))).iloc[0]
  assert r["params naive/reduced"] == pytest.approx(3.0)
  assert r["MACs naive/reduced"] == pytest.approx(5.0)
  assert r["train time naive/reduced"] == pytest.approx(9.0 / 12.0)
  assert r["accuracy naive - reduced (points)"] == pytest.approx(100 * (0.93 - 0.92))


@pytest.mark.parametrize("fmt", [f for f in tables.FORMATS if f != "json"])
def test_every_format_renders(tmp_path, fmt):
  write_runs(tmp_path)
  text = results.make_table(str(tmp_path), fmt)
  assert "naive" in text and "reduced" in text
  if fmt == "csv":
    frame = pd.read_csv(io.StringIO(text.split("\n\n")[0]))
    assert list(frame["variant"]) == ["naive", "reduced"]
  if fmt == "markdown":
    assert "92.00 ± 2.00" in text  # reduced accuracy mean ± std, in percent
  if fmt == "latex":
    assert "\\toprule" in text


def test_a_path_with_brackets_and_an_unreadable_result(tmp_path, caplog):
  root = tmp_path / "runs[1] *"  # a directory name, not a glob pattern
  write_runs(str(root))
  cut = root / "reduce=True,seed=2" / wd.RESULT
  cut.write_text(cut.read_text()[:50])  # cut short by a kill
  partial = root / "reduce=False,seed=2" / wd.RESULT
  partial.write_text('{"model": "toy"}')  # not a complete result
  caplog.set_level("WARNING")
  runs = results.collect(str(root))
  assert len(runs) == 4  # the two unreadable ones are left out, by name
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert str(cut) in messages and "unreadable" in messages
  assert str(partial) in messages and "it lacks reduce, dataset" in messages
  text = results.make_table(str(root))
  assert "naive" in text and "reduced" in text


def test_unknown_time_is_shown_as_unknown_never_zero(tmp_path):
  write_runs(tmp_path)
  for seed in range(3):
    path = os.path.join(tmp_path, f"reduce=True,seed={seed}", wd.RESULT)
    r = wd.read_json(path)
    r["train_time_s"] = r["examples_per_s"] = None  # a resumed run whose time is unknown
    wd.write_json(path, r)
  text = results.make_table(str(tmp_path))
  assert "unknown" in text and " 0.0 ±" not in text


def test_group_by_and_errors(tmp_path):
  write_runs(tmp_path)
  per_seed = results.aggregate(results.collect(str(tmp_path)), ["variant", "seed"])
  assert len(per_seed) == 6 and (per_seed["n"] == 1).all()
  with pytest.raises(ConfigError, match=r"unknown column\(s\) \['color'\]"):
    results.aggregate(results.collect(str(tmp_path)), ["color"])
  with pytest.raises(ConfigError, match="no result.json below"):
    results.collect(str(tmp_path / "empty"))


def test_ablation_knobs_are_rows_and_each_reduced_row_meets_its_naive(tmp_path):
  """Runs that differ in a knob (ratio, activation, budget) are never averaged together; each
  reduced configuration is compared with the naive run of the same budget."""

  def write(name, reduce, seed, acc, macs, kwargs=None, budget=None):
    result = {
        "model": "toy", "dataset": "digits", "reduce": reduce, "seed": seed, "params": 10,
        "macs": macs, "flops_xla": None, "eval_accuracy": acc, "train_time_s": 1.0,
        "examples_per_s": 1.0, "config": {"model_kwargs": kwargs or {}}
    }
    if budget:
      result["match"] = {"metric": "macs", "budget": budget, "width": macs / 1000, "cost": macs}
    wd.write_json(os.path.join(tmp_path, name, wd.RESULT), result)

  for seed in (0, 1):
    write(f"r05_{seed}", True, seed, 0.90, 100, {"reduction_ratio": 0.5}, 100)
    write(f"r025_{seed}", True, seed, 0.80, 100, {"reduction_ratio": 0.25}, 100)
    write(f"lin_{seed}", True, seed, 0.70, 100,
          {"reduction_ratio": 0.5, "reduction_activation": False}, 100)
    write(f"naive_{seed}", False, seed, 0.85, 101, {"reduction_ratio": 0.5}, 100)
    write(f"naive_big_{seed}", False, seed, 0.95, 300, {}, 300)
  runs = results.collect(str(tmp_path))
  assert results.default_group_by(runs) == [
      "model", "dataset", "variant", "ratio", "activation", "budget"
  ]
  summary = results.aggregate(runs)
  assert len(summary) == 5 and set(summary["n"]) == {2}
  ratios = results.ratios(summary).set_index(["ratio", "activation"])
  assert len(ratios) == 3  # the three reduced configurations, each against naive at macs 100
  assert ratios.loc[("0.25", "relu"), "accuracy naive - reduced (points)"] == \
      pytest.approx(5.0)
  assert ratios.loc[("0.5", "linear"), "accuracy naive - reduced (points)"] == \
      pytest.approx(15.0)
  assert (ratios["MACs naive/reduced"] == 1.01).all()
  assert "0.25" in results.make_table(str(tmp_path))
  from bottleneck.analysis import plots
  path = plots.accuracy_vs_cost(runs, str(tmp_path / "pareto.png"))  # one curve per family
  assert os.path.getsize(path) > 10_000


def test_squeezenets_expand_split_is_a_knob_of_both_variants(tmp_path):
  """pct3x3 rows are never averaged together; a reduced split meets the naive run of its own
  split, and a split that no naive run has goes unpaired."""
  for seed in (0, 1):
    for name, reduce, pct, acc in (("half", True, 0.5, 0.9), ("thin3x3", True, 0.01, 0.6),
                                   ("naive", False, 0.5, 0.95)):
      wd.write_json(
          os.path.join(tmp_path, f"{name}_{seed}", wd.RESULT), {
              "model": "squeezenet1_1", "dataset": "digits", "reduce": reduce, "seed": seed,
              "params": 10, "macs": 100, "flops_xla": None, "eval_accuracy": acc,
              "train_time_s": 1.0, "examples_per_s": 1.0, "config":
                  {"model_kwargs": {"pct3x3": pct}}
          })
  runs = results.collect(str(tmp_path))
  assert results.default_group_by(runs)[-1] == "pct3x3"
  summary = results.aggregate(runs)
  assert sorted(summary["pct3x3"]) == ["0.01", "0.5", "0.5"] and set(summary["n"]) == {2}
  paired = results.ratios(summary)
  assert list(paired["pct3x3"]) == ["0.5"]
  assert paired["accuracy naive - reduced (points)"].iloc[0] == pytest.approx(5.0)
  table = results.make_table(str(tmp_path))
  assert " 0.01 |" in table and " 0.0 |" not in table  # never rounded to 0.0


def test_failed_runs_are_named_under_the_table(tmp_path):
  write_runs(tmp_path)
  wd.write_json(os.path.join(tmp_path, "budget=7e5", wd.ERROR),
                {"error": "ConfigError: no width costs 7e+05 macs within 1%", "traceback": ""})
  text = results.make_table(str(tmp_path))
  assert ("Not in the table: 1 failed run(s) (their error.json):\n- budget=7e5: ConfigError: "
          "no width costs 7e+05 macs within 1%") in text
  (tmp_path / "odd" / wd.ERROR).parent.mkdir()
  (tmp_path / "odd" / wd.ERROR).write_text("[1, 2]")  # JSON, not an error.json: named, no crash
  assert "- odd: " + str(tmp_path / "odd" / wd.ERROR) + " is invalid" in results.make_table(
      str(tmp_path))


def write_predictions(root, examples=200, seed=0):
  """Each run's predictions on `examples` test examples, right exactly as often as its
  eval_accuracy says."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, examples)
  for variant, accs in ACC.items():
    for s, acc in enumerate(accs):
      predicted = labels.copy()
      wrong = rng.choice(examples, round(examples * (1 - acc)), replace=False)
      predicted[wrong] = (labels[wrong] + 1) % 10
      wd.write_predictions(
          os.path.join(root, f"reduce={variant == 'reduced'},seed={s}", wd.PREDICTIONS), predicted,
          labels)


def test_intervals_count_the_test_set_when_predictions_are_saved(tmp_path):
  write_runs(tmp_path)  # naive - reduced per seed: +1, -1, +3 points
  runs = results.collect(str(tmp_path))
  r = results.ratios(results.aggregate(runs), runs).iloc[0]
  seeds_only = intervals.seed_interval([1.0, -1.0, 3.0])
  assert r["paired seeds"] == 3 and r["verdict"] == "within noise"
  assert r["95% interval (points)"] == seeds_only.text() == "[-3.97, +5.97]"
  assert r["interval covers"] == intervals.SEEDS_ONLY
  write_predictions(tmp_path)
  runs = results.collect(str(tmp_path))
  r = results.ratios(results.aggregate(runs), runs).iloc[0]
  assert r["interval covers"] == intervals.SEEDS_AND_TEST
  low, high = (float(v) for v in r["95% interval (points)"].strip("[]").split(","))
  assert low < seeds_only.low and high > seeds_only.high  # wider: the test set counts too
  # a predictions file cut short: named, and that comparison falls back to the seeds alone
  path = tmp_path / "reduce=True,seed=1" / wd.PREDICTIONS
  path.write_bytes(path.read_bytes()[:50])
  with pytest.raises(wd.CorruptFile, match=r"predictions.npz is unreadable"):
    wd.read_predictions(str(path))
  runs = results.collect(str(tmp_path))
  assert results.ratios(results.aggregate(runs), runs).iloc[0]["interval covers"] == \
      intervals.SEEDS_ONLY


def test_the_a_a_check_pairs_disjoint_seed_sets(tmp_path):
  write_runs(tmp_path)
  write_predictions(tmp_path)
  runs = results.collect(str(tmp_path))
  aa = results.a_a(runs, {"variant": "naive"}, [0], [1])
  assert aa["paired seeds"] == 1 and aa["interval"] is None and aa["verdict"] is None
  aa = results.a_a(runs, {"variant": "reduced"}, [0, 1], [2, 1])
  assert aa["paired seeds"] == 0  # the sets overlap: no A/A
  aa = results.a_a(runs, {"variant": "reduced"}, [0, 1], [2])
  assert aa["paired seeds"] == 1  # the i-th of each set, as far as both go


def test_runs_that_differ_in_an_ungrouped_column_are_not_paired(tmp_path):
  """Two runs per seed and variant (a learning-rate sweep the table does not group by): no
  pairing, rather than a pandas error or a pairing of the wrong runs."""
  for lr in (0.1, 0.01):
    write_runs(tmp_path / f"lr={lr}", {"optimizer": {"learning_rate": lr}})
  runs = results.collect(str(tmp_path))
  table = results.compare(runs, "variant", "naive", "reduced")
  assert table.iloc[0]["paired seeds"] == 0
  assert table.iloc[0]["verdict"] == "no interval (fewer than 2 seeds paired)"
  # The table itself groups by what differs: one row per learning rate, each paired within.
  r = results.ratios(results.aggregate(runs), runs).set_index("config")
  assert list(r.index) == ["optimizer.learning_rate=0.01", "optimizer.learning_rate=0.1"]
  assert (r["paired seeds"] == 3).all()


def test_a_copy_of_a_run_counts_once_and_a_contradicting_one_not_at_all(tmp_path, caplog):
  """`cp -r 'reduce=False,seed=0' copy_of_naive0` in a sweep directory made the naive row n=4,
  unflagged: a (config, seed) pair now counts once, and copies that disagree are left out."""
  write_runs(tmp_path, {"num_train_steps": 100})
  shutil.copytree(tmp_path / "reduce=False,seed=0", tmp_path / "copy_of_naive0")
  caplog.set_level("WARNING")
  summary = results.aggregate(results.collect(str(tmp_path))).set_index("variant")
  assert summary.loc["naive", "n"] == 3
  assert summary.loc["naive", "eval_accuracy mean"] == pytest.approx(np.mean(ACC["naive"]))
  assert "copy_of_naive0, reduce=False,seed=0 are the same run" in caplog.text
  copy = tmp_path / "copy_of_naive0" / wd.RESULT
  wd.write_json(str(copy), {**wd.read_json(str(copy)), "eval_accuracy": 0.5})
  caplog.clear()
  runs = results.collect(str(tmp_path))
  assert sorted(runs[runs["variant"] == "naive"]["seed"]) == [1, 2]
  assert "with different accuracies (0.5000, 0.9100): all left out" in caplog.text


def test_a_run_of_another_config_is_a_row_of_its_own(tmp_path, caplog):
  """A run of another config trained into a sweep's directory was averaged into its variant's
  row (n=4, 74.44 ± 17.09): now the config is a column and the foreign run a row of its own,
  named in a warning, and the sweep's rows and their pairing are as without it."""
  write_runs(tmp_path, {"num_train_steps": 100})
  wd.write_json(
      str(tmp_path / "foreign" / wd.RESULT), {
          **wd.read_json(str(tmp_path / "reduce=False,seed=0" / wd.RESULT)), "eval_accuracy": 0.2,
          "config": {"num_train_steps": 8, "reduce": False, "seed": 0}
      })
  caplog.set_level("WARNING")
  runs = results.collect(str(tmp_path))
  assert "differ in num_train_steps" in caplog.text
  assert "foreign has num_train_steps=8" in caplog.text
  summary = results.aggregate(runs).set_index(["variant", "config"])
  assert summary.loc[("naive", "num_train_steps=100"), "n"] == 3
  assert summary.loc[("naive", "num_train_steps=8"), "n"] == 1
  assert summary.loc[("reduced", "num_train_steps=100"), "n"] == 3
  [r] = results.ratios(results.aggregate(runs), runs).to_dict("records")
  assert r["config"] == "num_train_steps=100" and r["paired seeds"] == 3
  assert r["accuracy naive - reduced (points)"] == pytest.approx(1.0)
  text = results.make_table(str(tmp_path))
  assert "num_train_steps=8" in text
  # A field a record lacks is at the default: a run recorded before it existed is the same.
  assert not results._differing(
      pd.Series([{"a": "1"}, {"a": "1", "b": "2"}]).map(lambda c: {**{"b": "2"}, **c}),
      [pd.Series([0, 0])])[0]


def test_an_accuracy_that_contradicts_its_predictions_is_left_out(tmp_path, caplog):
  """One run's eval_accuracy edited to 0.5 (in range) made the difference 20.1 points while its
  interval, from the predictions files, was centred on 31.4: a result whose accuracy is not
  its predictions' is now left out by name, and the difference and the interval come from the
  same runs."""
  write_runs(tmp_path)
  write_predictions(tmp_path)
  bad = tmp_path / "reduce=True,seed=1" / wd.RESULT
  wd.write_json(str(bad), {**wd.read_json(str(bad)), "eval_accuracy": 0.5})
  caplog.set_level("WARNING")
  runs = results.collect(str(tmp_path))
  assert len(runs) == 5 and f"{bad} says eval_accuracy=0.5, but its predictions.npz has 184 of " \
      "200 examples right" in caplog.text
  r = results.ratios(results.aggregate(runs), runs).iloc[0]
  assert r["paired seeds"] == 2 and r["interval covers"] == intervals.SEEDS_AND_TEST
  assert r["accuracy naive - reduced (points)"] == pytest.approx(2.0)  # seeds 0 and 2
  low, high = (float(v) for v in r["95% interval (points)"].strip("[]").split(","))
  assert low < 2.0 < high


@pytest.mark.parametrize("key,value,why", [
    ("eval_accuracy", 97.5, r"eval_accuracy=97.5 is invalid; it must be a finite number in "
     r"\[0, 1\] \(a fraction, not a percentage\)"),
    ("eval_accuracy", -0.5, r"eval_accuracy=-0.5"),
    ("eval_accuracy", "high", r"eval_accuracy='high'"),
    ("eval_accuracy", float("nan"), r"eval_accuracy=nan"),
    ("macs", 0, r"macs=0 is invalid; it must be a whole number >= 1"),
    ("train_time_s", float("inf"), r"train_time_s=inf"),
    ("reduce", "yes", r"reduce='yes' is not true or false"),
    ("config", "oops", r"config='oops' is invalid; it must be an object or null"),
    ("match", "x", r"match='x' is invalid; it must be an object or null"),
    ("config", {"model_kwargs": "a"}, r"config.model_kwargs='a' is invalid"),
    ("config", {"model_kwargs": {"reduction_ratio": "half"}},
     r"config.model_kwargs.reduction_ratio='half' is invalid; it must be a finite number in "
     r"\[0, 1\] or null"),
    ("match", {"metric": "macs"}, r"match lacks budget, width"),
    ("match", {"metric": "macs", "budget": "1e6", "width": 1.0}, r"match.budget='1e6'"),
    ("device", 3, r"device=3 is invalid; it must be text or null"),
])
def test_impossible_values_are_left_out_by_name(tmp_path, caplog, key, value, why):
  """A value no run writes (an accuracy in percent, NaN, a zero cost, an infinite time) used
  to reach the tables and the finding ("3315.63 ± 5572.33"): now the file is named and left out,
  as a file cut short is, and a sweep recomputes it."""
  write_runs(tmp_path)
  bad = tmp_path / "reduce=True,seed=1" / wd.RESULT
  wd.write_json(str(bad), {**wd.read_json(str(bad)), key: value})
  caplog.set_level("WARNING")
  runs = results.collect(str(tmp_path))
  assert len(runs) == 5 and runs["eval_accuracy"].between(0, 1).all()
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert str(bad) in messages
  with pytest.raises(wd.CorruptFile, match=why):
    wd.read_result(str(bad))


def test_a_missing_seed_leaves_the_difference_and_its_interval_on_the_same_seeds(tmp_path):
  """With one seed's result unreadable, the difference column compared 3 naive seeds with 2
  reduced ones while its interval paired 2: both now come from the seeds both variants ran."""
  write_runs(tmp_path)
  (tmp_path / "reduce=True,seed=2" / wd.RESULT).write_text('{"model": ')  # cut short
  runs = results.collect(str(tmp_path))
  r = results.ratios(results.aggregate(runs), runs).iloc[0]
  assert r["paired seeds"] == 2
  # seeds 0 and 1: naive 0.91, 0.91; reduced 0.90, 0.92
  assert r["accuracy naive - reduced (points)"] == pytest.approx(0.0, abs=1e-9)
