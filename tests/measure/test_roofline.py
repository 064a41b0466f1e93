"""The roofline's arithmetic, what it times, training memory, and the command end to end.
No timing is asserted: only that what is measured is placed and labelled right."""

import json

import jax.numpy as jnp
import pytest
from flax import nnx

from bottleneck.measure import complexity, roofline
from bottleneck.nn.layers import ConvUnit
from bottleneck.nn.paths import Paths
from bottleneck.util.errors import ConfigError
from tests import commands


def test_the_roofs_by_hand():
  # peak 100 GFLOP/s, 10 GB/s: the ridge at 10 FLOP/B.
  assert roofline.attainable(5.0, 100.0, 10.0) == 50.0
  assert roofline.attainable(20.0, 100.0, 10.0) == 100.0
  assert roofline.bound(9.9, 100.0, 10.0) == "memory"
  assert roofline.bound(10.0, 100.0, 10.0) == "compute"
  line = roofline.Affine(fixed=1000.0, per_image=300.0)
  assert line.at(3) == 1900.0
  assert line.largest_batch(1900.0) == 3 and line.largest_batch(1899.0) == 2
  assert line.largest_batch(999.0) == 0


def test_intensities_of_a_conv_by_hand():
  """A 3x3 conv 16 -> 32 on a batch of two 8x8 maps, float32: the weights are read once per
  batch, the maps once per image."""
  unit = ConvUnit(16, 32, 3, rngs=nnx.Rngs(0), name="c")
  got = roofline.intensities(unit, (2, 8, 8, 16), jnp.float32)
  macs = 2 * 64 * 9 * 16 * 32
  nbytes = 4 * (2 * 64 * 16 + 9 * 16 * 32 + 32 + 2 * 64 * 32)
  assert got["macs"] == macs and got["bytes"] == got["conv_bytes"] == nbytes
  assert got["intensity"] == got["conv_intensity"] == pytest.approx(2 * macs / nbytes)


def test_fragments_keep_the_flops_and_move_more_bytes():
  rows = {}
  for parts in (1, 2, 4):
    case = roofline.fragments(parts, side=8, channels=16, depth=2)
    module = case.build(False, jnp.float32, Paths())
    rows[parts] = (complexity.count_params(module),
                   roofline.intensities(module, (1, 8, 8, 16), jnp.float32))
  assert len({(p, r["macs"]) for p, r in rows.values()}) == 1  # same params and MACs
  # Each branch reads the whole input: more parts, more bytes, lower intensity.
  assert rows[1][1]["conv_bytes"] < rows[2][1]["conv_bytes"] < rows[4][1]["conv_bytes"]
  with pytest.raises(ConfigError, match="parts=3 must divide channels=16"):
    roofline.fragments(3, channels=16)


def test_each_conv_of_3a_is_a_case_on_the_input_it_gets_in_the_block():
  cases = {c.name: c for c in roofline.conv_cases("inception_3a")}
  assert set(cases) == {
      "inception_3a reduced/#1x1_0", "inception_3a reduced/#3x3_reduce",
      "inception_3a reduced/#3x3_0", "inception_3a reduced/#5x5_reduce",
      "inception_3a reduced/#5x5_0", "inception_3a reduced/pool_0", "inception_3a naive/#1x1_0",
      "inception_3a naive/#3x3_0", "inception_3a naive/#5x5_0"
  }
  c = cases["inception_3a reduced/#5x5_0"]
  assert (c.image_size, c.channels) == (28, 16)
  unit = c.build(None, jnp.float32, Paths())
  assert (unit.in_features, unit.out_features, unit.kernel_size) == (16, 32, (5, 5))
  assert cases["inception_3a naive/#5x5_0"].channels == 192


def test_train_memory_analytic():
  row = roofline.train_memory("inception_small", reduce=True, batch=8, budget_gb=0.1, xla=False)
  image = 28 * 28 * 3 * 4
  per_image = row["activation_bytes_per_image"] + image
  assert row["weights_bytes"] == 4 * row["params"]  # float32
  assert row["analytic_bytes"] == 4 * row["weights_bytes"] + 8 * per_image
  assert row["analytic_largest_batch"] == int((0.1e9 - 4 * row["weights_bytes"]) // per_image)
  assert 0 < row["backward_minimum_bytes_per_image"] < row["activation_bytes_per_image"]
  assert "xla_bytes" not in row


def test_command_end_to_end(tmp_path):
  out = tmp_path / "roof line"  # a space in the path
  proc = commands.run("experiments.roofline", "--config=configs/roofline.py:smoke",
                      "--config.blocks=('flatten_head_cnn@8',)", "--config.fragments=(1, 2)",
                      "--config.memory_models=(('flatten_head_cnn', 8),)",
                      "--config.fragment_shape=(8, 16, 2)", "--config.batch=2",
                      "--config.repeats=1", f"--config.bandwidth_elements={2 ** 20}",
                      "--config.memory_xla=False", f"--out={out}", timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((out / "roofline.json").read_text())
  assert result["peak_gflops_per_s"] > 0 and result["bandwidth"]["triad_gb_per_s"] > 0
  assert result["ridge"] == pytest.approx(result["peak_gflops_per_s"]
                                          / result["bandwidth"]["triad_gb_per_s"])
  kinds = [(r["kind"], r["reduce"]) for r in result["rows"]]
  assert kinds == [("block", False), ("block", True), ("fragments", None), ("fragments", None)]
  for r in result["rows"]:
    assert r["bound"] == roofline.bound(r["conv_intensity"], result["peak_gflops_per_s"],
                                        result["bandwidth"]["triad_gb_per_s"])
    assert r["of_roof"] == pytest.approx(r["fwd_gflops_per_s"] / r["roof_gflops_per_s"])
  assert [m["reduce"] for m in result["memory"]] == [False, True]
  assert any(line.startswith("flatten_head_cnn@8 reduced: ") for line in result["findings"])
  assert "Fragmentation" in (out / "ROOFLINE.md").read_text()
  assert (out / "roofline.png").stat().st_size > 10_000
  assert "ridge point" in proc.stdout


@pytest.mark.parametrize("kwargs,message", [
    ({"blocks": ["inception_3z"]}, "unknown benchmark case 'inception_3z'"),
    ({"blocks": [], "dtype": "float16"}, "unknown dtype 'float16'"),
    ({"blocks": [], "batch": 0}, "batch=0 is invalid"),
    ({"blocks": [], "fragment_parts": [3]}, "parts=3 must divide channels=128"),
    ({"blocks": [], "fragment_shape": (8, 0, 2)}, "channels=0 is invalid"),
])
def test_a_bad_plan_is_refused_before_anything_is_measured(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    roofline.plan(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"batch": 2}, "memory_batch=2 is invalid"),
    ({"budget_gb": 0}, "budget_gb=0 is invalid"),
    ({"name": "googlenett"}, "unknown model 'googlenett'"),
])
def test_bad_training_memory_arguments(kwargs, message):
  args = {"name": "inception_small", "reduce": True, "batch": 8, "budget_gb": 1.0, **kwargs}
  with pytest.raises(ConfigError, match=message):
    roofline.check_train_memory(args.pop("name"), **args)
