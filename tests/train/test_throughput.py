"""The side-by-side throughput harness: every contender trains the same steps on the same data,
an earlier checkout imports its own code, and PyTorch's twin takes the same steps as ours."""

import os

import pytest

from bottleneck.data import pipeline
from bottleneck.train import throughput
from bottleneck.util.errors import ConfigError
from tests import ROOT
from tests.tiny_train_config import get_config


def _specs(digits_dir, baseline, torch):
  config = get_config(data_dir=digits_dir)
  split = pipeline.config_splits(config, ("train",))["train"]
  return throughput.contender_specs(config, split.source.dataset_info.data_dir, 10, 24,
                                    baseline=baseline, torch=torch)


def test_contenders_take_the_same_steps(digits_dir, monkeypatch):
  # As an entry point runs it, malloc on huge pages (`bottleneck.util.hugepages`).
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
  monkeypatch.delenv("BOTTLENECK_HUGEPAGES", raising=False)
  specs = _specs(digits_dir, ROOT, True)
  names = [name for name, _ in specs]
  assert names == [
      "this checkout", "this checkout, batches read from disk", "this checkout, 4 KB pages",
      f"earlier checkout ({os.path.basename(ROOT)}; 4 KB pages)", "PyTorch eager"
  ]
  assert specs[1][1]["config"]["data"]["in_memory_mb"] == 0
  # Two of them in their processes (batches from disk and from memory are the same:
  # tests/data/test_pipeline.py; PyTorch's steps: below). This checkout again as the "earlier
  # checkout": imported from its directory, in its process, with 4 KB pages.
  timed = [specs[0], specs[3]]
  rows = throughput.measure(timed, rounds=2, steps=2, batch_size=32, say=lambda _: None)
  assert [r["contender"] for r in rows] == [name for name, _ in timed]
  for r in rows:
    assert r["tree"] == ROOT and len(r["round_ms_per_step"]) == 2 and r["ms_per_step"] > 0
  assert rows[0]["time_vs_first"] == 1.0
  assert rows[0]["glibc_tunables"] == "glibc.malloc.hugetlb=1"
  assert rows[1]["glibc_tunables"] == ""  # the tunable is gone, the opt-out set
  # The same steps on the same batches: the same losses from the checkout imported elsewhere.
  assert len(rows[0]["losses"]) == 2 and rows[1]["losses"] == rows[0]["losses"]


def test_without_huge_pages_no_contender_compares_them(digits_dir, monkeypatch):
  monkeypatch.setenv("BOTTLENECK_HUGEPAGES", "0")
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  specs = _specs(digits_dir, ROOT, False)
  assert [name for name, _ in specs] == [
      "this checkout", "this checkout, batches read from disk",
      f"earlier checkout ({os.path.basename(ROOT)})"
  ]
  assert not any(spec.get("small_pages") for _, spec in specs)


def test_the_pytorch_twin_takes_our_steps(digits_dir):
  pytest.importorskip("torch")  # optional extra: pip install -e '.[torch]'
  spec = _specs(digits_dir, None, True)[-1][1]
  ours, twin = throughput._jax_setup(spec), throughput._torch_setup(spec)
  for start, n in ((0, 3), (3, 4)):  # the same weights, batches, loss and SGD updates
    assert twin(start, n) == pytest.approx(ours(start, n), rel=1e-3)


def test_a_contender_that_fails_is_named(digits_dir, tmp_path):
  (tmp_path / "bottleneck").mkdir()  # a directory that is no checkout: its import fails
  specs = [(n, s) for n, s in _specs(digits_dir, str(tmp_path), False) if "earlier" in n]
  with pytest.raises(ConfigError, match=r"contender 'earlier checkout \(.*\)' .* stopped"):
    throughput.measure(specs, rounds=1, steps=1, batch_size=32, say=lambda _: None)


def test_a_contender_given_bad_input_says_one_line(digits_dir, capfd):
  """Bad input met in a contender's process (here a batch larger than the split, which the
  command refuses before starting any) is one line, the parent's, no traceback."""
  name, spec = _specs(digits_dir, None, False)[0]
  spec = {**spec, "config": {**spec["config"], "batch_size": 5000}}
  with pytest.raises(
      ConfigError, match=r"contender 'this checkout' .* stopped: batch_size=5000 "
      r"is larger than the train split \(1347 examples\)\.$"):
    throughput.measure([(name, spec)], rounds=1, steps=1, batch_size=32, say=lambda _: None)
  err = capfd.readouterr().err
  assert "Traceback" not in err and "error:" not in err, err[-2000:]


def test_an_earlier_checkout_imports_its_own_code_alone(digits_dir, tmp_path, capfd):
  """The editable install's finder gave a checkout the modules it lacks from this one (a
  checkout before builders.py timed this checkout's builders); with an older one the result
  was a 25-line traceback from this checkout's code. Now a checkout runs alone, or stops
  with one line."""
  old = tmp_path / "old checkout"
  (old / "bottleneck").mkdir(parents=True)
  (old / "bottleneck" / "__init__.py").write_text("")  # no run_config.py, no train.py
  specs = [(n, s) for n, s in _specs(digits_dir, str(old), False) if "earlier" in n]
  with pytest.raises(
      ConfigError, match=r"contender 'earlier checkout \(old checkout\)' .* "
      r"stopped: ImportError: cannot import name 'run_config' from 'bottleneck' "
      r"\(.*old checkout/bottleneck/__init__.py\)"):
    throughput.measure(specs, rounds=1, steps=1, batch_size=32, say=lambda _: None)
  assert "Traceback" not in capfd.readouterr().err


def test_sigterm_stops_the_contenders(digits_dir, monkeypatch):
  """SIGTERM (a scheduler, `timeout`) ended experiments.throughput silently and left its
  contenders running for up to 25 s: it is now Ctrl-C's KeyboardInterrupt, which stops them."""
  import signal

  from experiments import throughput as command
  started, original = [], throughput.Contender
  monkeypatch.setattr(throughput, "Contender",
                      lambda *a: started.append(original(*a)) or started[-1])
  say = lambda line: line.startswith("round") and os.kill(os.getpid(), signal.SIGTERM)
  previous = signal.signal(signal.SIGTERM, command._interrupt)
  try:
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
      throughput.measure(
          _specs(digits_dir, None, False)[:1], rounds=3, steps=1, batch_size=32, say=say)
  finally:
    signal.signal(signal.SIGTERM, previous)
  assert len(started) == 1 and started[0].proc.poll() is not None


def test_the_pipeline_alone_is_timed_per_count_of_workers(digits_dir):
  """`pipeline_rates` (experiments.throughput --pipeline_only): a row per count of workers, in
  order, the first the reference of the ratios; each round's batches after those made ahead."""
  from bottleneck.train import run_config
  config = run_config.default_config()
  config.data_dir, config.batch_size, config.data.crop_padding = digits_dir, 64, 2
  split = pipeline.config_splits(config, ("train",))["train"]
  said = []
  rows = throughput.pipeline_rates(config, split, 1, [0, 1], rounds=2, steps=3, say=said.append)
  assert [r["workers"] for r in rows] == [0, 1] and rows[0]["speedup_vs_first"] == 1.0
  assert all(r["images_per_s"] > 0 and len(r["round_images_per_s"]) == 2 for r in rows)
  assert len(said) == 2 and said[0].startswith("round 1/2: 0 workers ")
  assert [r["steps"] for r in rows] == [3, 4]  # 1 worker: 4 of its rounds


def test_the_pipeline_is_timed_over_whole_rounds_of_its_workers():
  """Workers started together deliver in bursts: 6 batches of 8 workers on 2 cores were all
  made ahead, and timed as a rate of millions of images/s. At least 4 rounds, and whole ones."""
  assert [throughput.timed_batches(w, 6) for w in (0, 1, 2, 4, 8, 15)] == [6, 6, 8, 16, 32, 60]
  assert throughput.timed_batches(3, 13) == 15 and throughput.timed_batches(2, 8) == 8
