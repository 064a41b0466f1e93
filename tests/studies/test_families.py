"""The cross-family table (`bottleneck.studies.families`): costs computed, times and accuracies read
from a benchmark.json and a sweep's results, "not measured" where none is given."""

import os

import pytest

from bottleneck.studies import families
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError

NIN = (families.FAMILIES[-1],)  # the quickest network to build


def _result(root, reduce, activation, seed, accuracy):
  name = f"reduce={reduce},act={activation},seed={seed}"
  wd.write_json(
      os.path.join(root, name, wd.RESULT), {
          "model": "nin", "dataset": "fashion_mnist" if "fashion" in str(root) else "digits",
          "reduce": reduce, "seed": seed, "params": 1, "macs": 5_100_000, "flops_xla": 1.0,
          "eval_accuracy": accuracy, "train_time_s": 1.0, "examples_per_s": 1.0,
          "compile_time_s": 1.0, "device": "cpu", "num_classes": 10, "config": {
              "model_kwargs": {"reduction_activation": activation}
          }, "match": {"metric": "macs", "budget": 5.1e6, "width": 0.12, "width_extra": 0}
      })


def test_the_table_from_a_benchmark_and_a_sweep(tmp_path):
  # With the 1x1s 3-5 points above without on every seed; linear 1x1s 0.2 above or below.
  for seed, (w, wo, lin) in enumerate([(0.95, 0.91, 0.952), (0.94, 0.90, 0.938),
                                       (0.96, 0.91, 0.962)]):
    _result(tmp_path, True, True, seed, w)
    _result(tmp_path, False, True, seed, wo)
    _result(tmp_path, True, False, seed, lin)
  benchmark = {
      "ratios": [
          {"name": "nin_mlpconv1", "ratio": None, "batch": 32, "time naive/reduced": 0.25},
          {"name": "nin_mlpconv2", "ratio": None, "batch": 32, "time naive/reduced": 0.64},
          {"name": "inception_3a", "ratio": None, "batch": 32, "time naive/reduced": 3.0},
      ]
  }
  path = tmp_path / "benchmark.json"
  wd.write_json(str(path), benchmark)
  loaded, runs = families.load(str(path), str(tmp_path))
  row = families.table(loaded, runs, NIN).iloc[0]
  # NiN by hand (tests/nn/test_nin.py): 966,986 and 802,186 parameters.
  assert row["params with / without"] == "0.967M / 0.802M"
  assert row["MACs without / with"] == "0.66x"
  assert row["block time, without / with"] == "0.40x (0.25-0.64, 2 blocks, batch 32)"
  assert row["accuracy: network, data, MACs budget per image"] == "nin on digits, macs 5.1e+06"
  assert row["accuracy at equal MACs, with vs without"].startswith("95.0 vs 90.7%: +4.33 [")
  assert row["accuracy at equal MACs, with vs without"].endswith("(with more accurate)")
  assert "linear 1x1s: 95.1 vs 95.0%: +0.07 [" in row["the paper's knob vs published"]
  assert row["the paper's knob vs published"].endswith("(within noise)")
  text = families.markdown(families.table(None, None, NIN))
  _result(tmp_path / "fashion", True, True, 0, 0.8)  # another sweep's run below the same root
  with pytest.raises(ConfigError, match=r"span datasets digits, fashion_mnist; give the workdir"):
    families.table(None, families.load(None, str(tmp_path))[1], NIN)
  assert text.count(families.NOT_MEASURED) == 4 and "nin @32" in text


def test_bad_sources_are_named(tmp_path):
  with pytest.raises(ConfigError, match=r"--benchmark='.*nothing.json' does not exist"):
    families.load(str(tmp_path / "nothing.json"), None)
  cut = tmp_path / "cut.json"
  cut.write_text('{"ratios": [')
  with pytest.raises(wd.CorruptFile, match=r"cut.json is unreadable"):
    families.load(str(cut), None)
  other = tmp_path / "other.json"
  other.write_text('{"rows": []}')
  with pytest.raises(wd.CorruptFile, match=r"lacks ratios"):
    families.load(str(other), None)
  for text in ('[1]', '{"ratios": [1, "a"]}'):  # JSON, not a benchmark.json: no traceback
    other.write_text(text)
    with pytest.raises(wd.CorruptFile, match=r"other.json.* (not a JSON object|not a list of "
                       r"objects)"):
      families.load(str(other), None)
  with pytest.raises(ConfigError, match=r"--sweep='.*missing' is not a directory"):
    families.load(None, str(tmp_path / "missing"))
  with pytest.raises(ConfigError, match=r"no result.json below"):
    families.load(None, str(tmp_path))
