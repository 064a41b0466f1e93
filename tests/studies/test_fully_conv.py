"""`experiments.fully_conv` on a classifier trained by the training pipeline."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.nn import conversions, registry
from bottleneck.studies import fully_conv
from bottleneck.train import loop, saved_models as saved
from bottleneck.util.errors import ConfigError
from configs import digits_fc_head
from tests import commands
from tests.numerics import DEPTH, network_rtol


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_dir):
  workdir = str(tmp_path_factory.mktemp("fc") / "runs[2] fc")  # a path, not a glob pattern
  config = digits_fc_head.get_config()
  config.data_dir = digits_dir
  config.num_epochs = 3.0
  config.checkpoint_every_steps = 21  # checkpoints at steps 21, 42, 63
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_cli_json_score_map_matches_crops(trained):
  proc = commands.run("experiments.fully_conv", f"--workdir={trained}", "--image_size=24",
                      "--num_digits=3", "--format=json")
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["checkpoint_step"] == 63
  assert out["input_shape"] == [1, 24, 24, 1]
  assert out["score_map_shape"] == [9, 9, 10]  # (24 - 8) // 2 + 1
  assert out["crops_checked"] == 81
  # conv1, conv2, the 1x1, the hidden Dense and the classifier in a row
  rtol = network_rtol(saved.load(trained).model, 5)
  assert out["max_abs_diff_vs_crops"] <= rtol * out["max_abs_score"]
  assert len(out["digits"]) == 3
  assert len(out["files"]) == 11 and all(os.path.exists(f) for f in out["files"])


def test_bad_inputs(trained, tmp_path):
  with pytest.raises(ConfigError, match=r"--image_size=7 is too small; the minimum is the "
                     r"training size 8"):
    fully_conv.run(trained, 7)
  with pytest.raises(ConfigError, match="holds no model: it has no config.json"):
    fully_conv.run(str(tmp_path), 16)
  with pytest.raises(ConfigError, match=r"fully_conv: --repeats=0 is invalid"):
    fully_conv.run(trained, 24, repeats=0)  # a median of no timings
  with pytest.raises(ConfigError, match=r"fully_conv: --seed=-1 is invalid"):
    fully_conv.run(trained, 24, seed=-1)  # NumPy's traceback
  empty = tmp_path / "no_ckpt"
  empty.mkdir()
  (empty / "config.json").write_text(open(os.path.join(trained, "config.json")).read())
  with pytest.raises(ConfigError, match="holds no checkpoint"):
    fully_conv.run(str(empty), 16)
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(ConfigError, match=r"--out_dir=.*a_file is a file, not a directory"):
    fully_conv.run(trained, 24, out_dir=str(tmp_path / "a_file"))
  for n in (0, 10):  # a 24x24 canvas holds 9 non-overlapping 8x8 digits
    with pytest.raises(
        ConfigError, match=rf"--num_digits={n} is invalid: a 24x24 canvas holds "
        r"1 to 9 non-overlapping 8x8 digits"):
      fully_conv.run(trained, 24, num_digits=n)
  assert len(fully_conv.run(trained, 24, num_digits=9, out_dir=str(tmp_path / "h"))["digits"]) == 9


def test_an_unreadable_newest_checkpoint_loads_the_one_before_and_says_so(
    trained, tmp_path, caplog):
  copy = tmp_path / "copy"
  shutil.copytree(trained, copy)
  for root, _, files in os.walk(copy / "checkpoints" / "63"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"not a checkpoint")
  caplog.set_level("WARNING")
  out = fully_conv.run(str(copy), 16, out_dir=str(tmp_path / "h"))
  assert out["checkpoint_step"] == 42
  assert any(
      "loaded the checkpoint at step 42; the newest, step 63, is unreadable" in r.getMessage()
      for r in caplog.records)
  assert os.path.isdir(copy / "checkpoints" / "63")  # a reader moves nothing


@pytest.mark.parametrize("name", ["googlenet_bn"])  # googlenet: its shapes at 224 below
def test_googlenet_score_map_shapes_and_the_logits_at_the_training_size(name):
  model = registry.random_model(name, reduce=True, image_size=64, num_classes=12)
  model.eval()
  net = conversions.convolutionalize(model)
  assert (net.window, net.stride, net.min_image_size) == (2, 32, 64)
  x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
  forward = nnx.jit(lambda m, v: m(v))  # one compile each, not one per op
  logits = np.asarray(forward(model, jnp.asarray(x)))
  scores = np.asarray(forward(net, jnp.asarray(x)))
  assert scores.shape == (2, 1, 1, 12)
  assert np.abs(scores[:, 0, 0]
                - logits).max() <= network_rtol(model, DEPTH[name]) * np.abs(logits).max()
  for h, w in [(96, 96), (128, 160), (96, 224), (64, 97)]:
    shape = nnx.eval_shape(lambda m, h=h, w=w: m(jnp.zeros((1, h, w, 3))), net).shape
    assert shape == (1, (h - 64) // 32 + 1, (w - 64) // 32 + 1, 12), (h, w)
    assert shape[1] == net.score_map_size(h)
  with pytest.raises(ConfigError, match="input 63x96 is too small .* the minimum is its "
                     "training size 64x64"):
    net(jnp.zeros((1, 63, 96, 3)))


def test_googlenet_at_224_gives_the_papers_maps():
  """The seed's claim: defined at 224, GoogLeNet's score map is 1x1 there and 4x4 at 320."""
  net = nnx.eval_shape(lambda: conversions.convolutionalize(
      registry.fill_random(registry.abstract_model("googlenet", reduce=True))))
  assert (net.window, net.stride) == (7, 32)
  for side, cells in [(224, 1), (320, 4), (448, 8)]:
    shape = nnx.eval_shape(lambda m, s=side: m(jnp.zeros((1, s, s, 3))), net).shape
    assert shape == (1, cells, cells, 1000)


def test_photos_score_map_against_crops(small_googlenet_dir, tmp_path):
  out = fully_conv.run(small_googlenet_dir, 96, out_dir=str(tmp_path / "maps"), calibrate_bn=True,
                       repeats=1)
  rtol = network_rtol(saved.load(small_googlenet_dir).model, DEPTH["googlenet_bn"])
  assert out["kind"] == "photos" and out["stride"] == 32 and out["window"] == 2
  assert [p["photo"] for p in out["photos"]] == ["china.jpg", "flower.jpg"]
  for p in out["photos"]:
    # 427x640 -> shorter side 96 -> 96x144, cut to 64 + 32k: 96x128 -> a 2x3 map
    assert p["input_shape"] == [96, 128, 3] and p["score_map_shape"] == [2, 3, 1000]
    assert p["at_training_size_max_abs_diff"] <= rtol * p["at_training_size_max_abs_logit"]
    assert 0 <= p["vs_crops_max_rel_diff"] and 0 <= p["vs_crops_top1_agreement"] <= 1
    assert sum(r["locations"] for r in p["vs_crops_by_ring"]) == 6
    assert p["map_time_s"] > 0 and p["crop_time_s"] > 0
    assert p["map_macs"] > p["crop_macs"]
  assert all(os.path.exists(f) for f in out["files"]) and len(out["files"]) == 2
  text = fully_conv.format_text(out)
  assert "china.jpg: input 96x128 -> score map 2x3x1000 (6 locations)" in text
  with pytest.raises(ConfigError, match="--image_size=63 is too small; the minimum is the "
                     "training size 64"):
    fully_conv.run(small_googlenet_dir, 63, out_dir=str(tmp_path / "maps"))


def test_the_photos_need_a_network_of_three_channels(tmp_path):
  """A network trained on gray images (a small Inception on the digits) was refused as "input
  shape (1, 28, 28, 3) is invalid", naming no channel count; now the counts are said."""
  from bottleneck.train import run_config
  config = run_config.default_config()
  config.model_kwargs.in_channels, config.model_kwargs.width = 1, 0.1
  model = registry.abstract_model("inception_small", reduce=True, image_size=28, in_channels=1,
                                  width=0.1)
  with pytest.raises(
      ConfigError, match=r"this inception_small takes 1-channel images \(digits\); "
      "the photos have 3 channels"):
    fully_conv.run_photos(saved.Trained(model, config, 1, None), 320, str(tmp_path))


def test_photo_input_cuts_to_whole_strides():
  image = np.zeros((427, 640, 3), np.uint8)
  assert fully_conv.photo_input(image, 320, 224, 32).shape == (320, 480, 3)
  assert fully_conv.photo_input(image, 448, 224, 32).shape == (448, 640, 3)  # 671 wide
  assert fully_conv.photo_input(image, 230, 224, 32).shape == (224, 320, 3)
  with pytest.raises(ConfigError, match="--image_size=1025 is too large; at most 1024"):
    fully_conv.photo_input(image, 1025, 224, 32)
