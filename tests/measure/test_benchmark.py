"""Benchmark plumbing on a tiny block: rows complete, ratios consistent. Never speed."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest

from bottleneck.measure import benchmark
from bottleneck.nn.paths import Paths
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError
from tests import ROOT, commands, interruptible

KEYS = {
    "name", "reduce", "batch", "image_size", "compile_s", "fwd_ms", "fwd_bwd_ms", "images_per_s",
    "gflops_per_s", "peak_fraction", "macs", "flops_xla", "bytes_xla", "memory_mb"
}


def test_rows_are_complete_and_ratios_consistent():
  rows = benchmark.run(["small_inception"], batches=[2], paths=["xla"], warmup=1, repeats=2,
                       progress=False)
  assert len(rows) == 2 and {r["reduce"] for r in rows} == {True, False}
  for r in rows:
    assert KEYS <= set(r)
    assert r["fwd_ms_min"] <= r["fwd_ms"] <= r["fwd_ms_max"]
    assert r["bytes_xla"] > 0  # the CPU backend's cost model gives it
    # XLA's training temp memory holds at most every layer output (docs/memory.md), plus the
    # backward's buffers; both are there.
    assert r["activation_mb"] > 0 and r["fwd_bwd_temp_mb"] > 0
    assert r["images_per_s"] == pytest.approx(2 / (r["fwd_bwd_ms"] / 1e3))
    assert r["peak_fraction"] == pytest.approx(r["gflops_per_s"] / r["peak_gflops_per_s"])
  red, naive = sorted(rows, key=lambda r: not r["reduce"])
  assert red["macs"] < naive["macs"]  # the reduced module computes less
  (ratio,) = benchmark.central_ratios(rows)
  assert ratio["MACs naive/reduced"] == pytest.approx(naive["macs"] / red["macs"])
  assert ratio["time naive/reduced"] == pytest.approx(naive["fwd_bwd_ms"] / red["fwd_bwd_ms"])
  assert "cut MACs" in benchmark.verdict([ratio])
  # Rows written before a path kind existed (`norm`) took XLA's op for it, and still pair.
  old = [{k: v for k, v in r.items() if k != "norm"} for r in rows]
  assert benchmark.central_ratios(old) == [ratio] and rows[0]["norm"] == "xla"


def test_reduced_at_several_ratios_against_one_naive_timing():
  rows = benchmark.run(["small_inception"], batches=[2], paths=["xla"], warmup=1, repeats=1,
                       progress=False, ratios=[0.25, 1.0])
  assert sorted((r["reduce"], r["ratio"] or 0) for r in rows) == [
      (False, 0), (True, 0.25), (True, 1.0)
  ]  # naive once: it has no reductions
  by_ratio = {r["ratio"]: r for r in rows if r["reduce"]}
  assert by_ratio[0.25]["macs"] < by_ratio[1.0]["macs"]
  assert {r["ratio"] for r in benchmark.central_ratios(rows)} == {0.25, 1.0}
  with pytest.raises(ConfigError, match=r"ratio=1.5 is invalid; it must lie in \(0, 1\]"):
    benchmark.run(["small_inception"], batches=[2], ratios=[1.5], progress=False)


def test_break_even_says_where_the_reduced_block_stops_being_faster():
  row = lambda ratio, t: {
      "name": "b", "batch": 32, "dtype": "float32", "ratio": ratio, "time naive/reduced": t
  }
  (line,) = benchmark.break_even(
      [row(0.125, 3.0),
       row(0.5, 1.2), row(0.75, 0.9),
       row(1.0, 0.7), row(None, 2.0)])
  assert line == ("b (batch 32, float32): the reduced block stops being faster at ratio 0.75 "
                  "(0.90x; 1.20x at 0.5).")
  (line,) = benchmark.break_even([row(0.25, 2.0), row(1.0, 1.1)])
  assert "faster at every ratio timed (up to 1: 1.10x)" in line
  assert benchmark.break_even([row(0.5, 2.0)]) == []  # one ratio: nothing to locate


def test_cases_and_errors():
  assert {"inception_3a", "inception_5b", "v3_block_c", "small_downsample",
          "resnet_layer1"} <= set(benchmark.cases())
  # A network with one variant is timed in that one (resnet18's basic blocks: naive).
  assert benchmark.case("resnet18@64").variants == (False,)
  assert benchmark.case("resnet_layer3").variants == (True, False)
  with pytest.raises(ConfigError, match=r"MobileNetV2's 1x1s expand; it has no reduction ratio"):
    benchmark.case("mobilenet_block3").build(True, jnp.float32, Paths(), 0.5)
  assert benchmark.case("inception_small@28").image_size == 28
  # A network case is fed the channels the network takes (the digits' networks: one).
  assert benchmark.case("flatten_head_cnn@8").channels == 1
  assert benchmark.case("googlenet_bn@112").channels == 3
  with pytest.raises(ConfigError, match=r"unknown benchmark case 'inception_3z'.*Did you mean"):
    benchmark.case("inception_3z")
  with pytest.raises(ConfigError, match="unknown model 'googlenot'"):
    benchmark.case("googlenot@224")
  # the training step's network: model arguments after the size, typed as the model takes them
  c = benchmark.case("inception_small@28,width=0.25,in_channels=1")
  assert (c.name, c.channels) == ("inception_small@28,width=0.25,in_channels=1", 1)
  model = c.build(True, "float32", benchmark.Paths())
  assert model.in_channels == 1 and model.stages[0].conv.out_features == 24  # 96 / 4
  for spec, match in [("inception_small@28,width", r"'width' is not key=value"),
                      ("inception_small@28,widht=0.5", r"unknown argument of model "
                       r"'inception_small' 'widht'"),
                      ("inception_small@28,width=wide", r"width='wide' is not a float"),
                      ("inception_small@big", r"image size 'big' is not a whole number")]:
    with pytest.raises(ConfigError, match=match):
      benchmark.case(spec)


def test_cli_json_and_files(tmp_path):
  proc = commands.run("experiments.benchmark", f"--config={ROOT}/tests/tiny_benchmark_config.py",
                      "--format=json", f"--out={tmp_path}", timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert len(out["rows"]) == 4 and len(out["ratios"]) == 2
  assert {r["conv_1x1"] for r in out["rows"]} == {"xla", "matmul"}  # "auto" resolved
  assert {r["max_pool"] for r in out["rows"]} == {"xla", "argmax"}
  for name in ("benchmark.json", "benchmark.md", "time_vs_macs.png"):
    assert os.path.getsize(tmp_path / name) > 0
  # Each row was also kept as it was timed, the same as the end's.
  assert wd.read_jsonl(str(tmp_path / "rows.jsonl")) == json.loads(
      (tmp_path / "benchmark.json").read_text())["rows"]


def test_ctrl_c_keeps_the_rows_timed(tmp_path):
  """A benchmark stopped part way (Ctrl-C, or `timeout -s INT` on a lent machine) keeps the
  rows it timed, and says so; it used to say "rerun to resume from the last checkpoint"."""
  interruptible()
  rows = tmp_path / "rows.jsonl"
  proc = subprocess.Popen([
      sys.executable, "-m", "experiments.benchmark",
      f"--config={ROOT}/tests/tiny_benchmark_config.py",
      "--config.batches=(1, 2, 3, 4, 5, 6, 7, 8)", f"--out={tmp_path}"
  ], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not (rows.exists() and rows.read_text().count("\n") >= 1):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
    time.sleep(0.1)
  proc.send_signal(signal.SIGINT)
  err = proc.communicate(timeout=120)[1]
  assert proc.returncode == 130, err[-3000:]
  assert f"the rows timed so far are in {rows}" in err and "Traceback" not in err
  kept = wd.read_jsonl(str(rows))
  assert 1 <= len(kept) < 32 and all(r["name"] == "small_inception" for r in kept)
  assert not (tmp_path / "benchmark.json").exists()


def test_torch_peer_rows():
  pytest.importorskip("torch")  # optional extra: pip install -e '.[torch]'
  from bottleneck.measure import torch_peer
  rows = benchmark.run(["small_downsample"], batches=[1], warmup=1, repeats=1, progress=False,
                       torch_peer=True)
  for r in rows:  # add_torch_peer raises if the peer's parameters or outputs differ (beyond
    assert 0 <= r["torch_rel_diff"]  # what rounding allows: numerics.float32_rtol)
    assert r["torch_device"] == torch_peer.device()  # where ours runs
    assert r["jax/torch_eager fwd_bwd"] == pytest.approx(r["fwd_bwd_ms"]
                                                         / r["torch_eager_fwd_bwd_ms"])


@pytest.mark.parametrize(
    "kwargs,match", [(dict(batches=[0]), r"batches=0 is invalid; it must be a whole number >= 1"),
                     (dict(batches=[]), r"batches is empty"),
                     (dict(batches=[2], repeats=0), r"repeats=0 is invalid"),
                     (dict(batches=[2], warmup=-1), r"warmup=-1 is invalid"),
                     (dict(batches=[2], dtypes=["float16"]), r"unknown dtype 'float16'")])
def test_bad_numbers_are_refused_before_anything_is_timed(kwargs, match, monkeypatch):
  """A batch of 0 was a ZeroDivisionError; 0 repeats left every case "FAILED ... no median"
  with exit status 0. (The command turns a ConfigError into one line and exit 2,
  tests/util/test_cli.py.)"""
  monkeypatch.setattr(benchmark, "matmul_peak", lambda *a, **k: pytest.fail("timed"))
  with pytest.raises(ConfigError, match=match):
    benchmark.run(["small_downsample"], **{"progress": False, **kwargs})


def test_a_missing_pytorch_is_refused_before_anything_is_timed(monkeypatch):
  """The check had become a `pass` (an unused import removed by a linter): without PyTorch the
  JAX timings ran first, then the peer's import failed."""
  monkeypatch.setattr(benchmark, "matmul_peak", lambda *a, **k: pytest.fail("timed"))
  monkeypatch.delitem(sys.modules, "bottleneck.measure.torch_peer", raising=False)
  monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
  with pytest.raises(ConfigError, match=r"pip install -e '\.\[torch\]'"):
    benchmark.run(["small_downsample"], batches=[2], progress=False, torch_peer=True)
