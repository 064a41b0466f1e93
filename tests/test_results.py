"""Result tables from result.json files the test writes itself."""

import io
import os

import numpy as np
import pandas as pd
import pytest

from bottleneck import results, workdir as wd
from bottleneck.validation import ConfigError

ACC = {"reduced": [0.90, 0.92, 0.94], "naive": [0.91, 0.91, 0.97]}
TIME = {"reduced": [10.0, 12.0, 14.0], "naive": [9.0, 9.0, 9.0]}
COST = {"reduced": (100, 1000), "naive": (300, 5000)}


def write_runs(root):
  for variant, accs in ACC.items():
    for seed, acc in enumerate(accs):
      params, macs = COST[variant]
      wd.write_json(os.path.join(root, f"reduce={variant == 'reduced'},seed={seed}",
                                 wd.RESULT),
                    {"model": "toy", "dataset": "digits", "reduce": variant == "reduced",
                     "seed": seed, "params": params, "macs": macs, "flops_xla": 2.5 * macs,
                     "eval_accuracy": acc, "train_time_s": TIME[variant][seed],
                     "examples_per_s": 1000.0 / TIME[variant][seed], "compile_time_s": 1.0,
                     "device": "cpu"})


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


@pytest.mark.parametrize("fmt", results.FORMATS)
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
