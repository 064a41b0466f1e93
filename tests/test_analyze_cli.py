"""`python -m experiments.analyze`, end to end in a process of its own (`tests.commands`)."""

import json
import time

import pytest

from bottleneck.analysis import tables
from bottleneck.measure import complexity
from tests import commands


def run(*flags):
  return commands.run("experiments.analyze", *flags, timeout=600)


def test_json_for_all_models_both_variants():
  start = time.time()
  # XLA's count compiles each network (test_complexity checks it on googlenet): here the small
  # one has it, googlenet has the memory accounting (test_complexity checks its figures), and
  # the other two go through the same code in this process, without the subprocess' start-up.
  for model in ("googlenet", "inception_small"):
    xla, memory = model == "inception_small", model == "googlenet"
    proc = run(f"--model={model}", "--reduce=both", "--format=json", f"--{'' if xla else 'no'}xla",
               f"--{'' if memory else 'no'}memory")
    assert proc.returncode == 0, proc.stderr
    reduced, naive = json.loads(proc.stdout)
    assert (reduced["reduce"], naive["reduce"]) == (True, False)
    assert naive["total"]["macs"] > reduced["total"]["macs"] > 0
    assert (reduced["total"]["flops_xla"] > 0) if xla else reduced["total"]["flops_xla"] is None
    assert ("train_activation_bytes" in reduced["total"]) == memory
    if memory:
      assert reduced["dtype"] == "float32" and reduced["layers"][0]["convs"][0]["bytes"] > 0
  for model in ("googlenet_bn", "inception_v3"):
    reduced, naive = (complexity.analyze(model, reduce=r, xla=False) for r in (True, False))
    assert json.loads(tables.render_reports([reduced, naive], "json"))[1]["reduce"] is False
    assert naive["total"]["macs"] > reduced["total"]["macs"] > 0
  print(f"analyze, 4 models x 2 variants: {time.time() - start:.1f} s")


def test_one_variant_and_overrides():
  proc = run("--model=inception_small", "--reduce=false", "--image_size=32", "--num_classes=5",
             "--format=json")
  assert proc.returncode == 0, proc.stderr
  out = json.loads(proc.stdout)
  assert (out["reduce"], out["image_size"], out["num_classes"]) == (False, 32, 5)
  assert out["layers"][-1]["output_shape"] == [5]


@pytest.mark.parametrize("flags,message", [
    (["--model=googlenett"], "unknown model 'googlenett'"),
    (["--model=inception_v3", "--image_size=60"], "image_size=60 is too small; the minimum is 75"),
    (["--reduce=maybe"], "--reduce='maybe' is invalid; valid: true, false, both"),
    (["--dtype=bfloat16"], "--dtype=bfloat16 sets the dtype of the memory figures; add "
     "--memory"),
])
def test_bad_input_is_one_clear_line(flags, message):
  proc = run(*flags)
  assert proc.returncode == 2
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr


def test_a_saved_model_is_analyzed_as_it_was_built(small_googlenet_dir):
  proc = run(f"--workdir={small_googlenet_dir}", "--format=json", "--noxla")
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = json.loads(proc.stdout)  # one report: an object
  assert (report["model"], report["image_size"], report["num_classes"]) == ("googlenet_bn", 64,
                                                                            1000)
  assert report["checkpoint_step"] == 0 and report["workdir"] == small_googlenet_dir
  proc = run(f"--workdir={small_googlenet_dir}", "--reduce=false")
  assert proc.returncode == 2
  assert "--reduce and --workdir exclude each other" in proc.stderr


def test_both_variants_at_equal_parameters():
  proc = run("--model=flatten_head_cnn", "--reduce=both", "--match_params=20000", "--format=json",
             "--noxla")
  assert proc.returncode == 0, proc.stderr[-2000:]
  reduced, naive = json.loads(proc.stdout)
  for r in (reduced, naive):
    assert r["match"]["metric"] == "params" and r["match"]["cost"] == r["total"]["params"]
    assert abs(r["total"]["params"] - 20000) <= 200 and r["width"] == r["match"]["width"]
  assert reduced["width"] > naive["width"]  # the 1x1 frees parameters for width
  proc = run("--model=inception_v3", "--match_macs=1e9")
  assert proc.returncode == 2 and "inception_v3 has no width multiplier" in proc.stderr
