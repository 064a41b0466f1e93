"""Model directories: imported weights written whole or not at all, loaded like a training
workdir, never overwritten; clear errors for directories that hold no model."""

import importlib.util
import json
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import registry
from bottleneck.train import builders, checkpoints, loop, saved_models
from bottleneck.util import compat, workdir as wd
from bottleneck.util.errors import ConfigError
from tests import commands
from tests.numerics import DEPTH, network_rtol
from tests.tiny_train_config import get_config as tiny_config

HAVE_TORCHVISION = (importlib.util.find_spec("torch") is not None
                    and importlib.util.find_spec("torchvision") is not None)
needs_torchvision = pytest.mark.skipif(not HAVE_TORCHVISION,
                                       reason="the torch extra is not installed")


def _tiny(tmp_path, digits_dir):
  """A small model and the config that builds it (no training)."""
  config = tiny_config()
  config.data_dir = digits_dir
  return builders.build_model(config, 10), config


IMPORTED = {
    "source": "test", "weights": "random", "model": "flatten_head_cnn", "num_classes": 10,
    "preprocess": {"image_size": 8, "mean": 0.5, "std": 0.5}
}


def test_written_model_loads_with_the_same_values(tmp_path, digits_dir):
  model, config = _tiny(tmp_path, digits_dir)
  out = str(tmp_path / "odd [dir]*")
  saved_models.write_imported(out, model, config, IMPORTED)
  assert sorted(os.listdir(out)) == [wd.CHECKPOINTS, wd.CONFIG, wd.IMPORTED]
  loaded = saved_models.load(out)
  assert loaded.step == 0 and loaded.imported["source"] == "test"
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 1)), jnp.float32)
  model.eval()
  np.testing.assert_array_equal(np.asarray(loaded.model(x)), np.asarray(model(x)))
  assert loaded.preprocess.image_size == 8 and loaded.preprocess.channels == 1


def test_an_existing_directory_is_never_replaced(tmp_path, digits_dir):
  model, config = _tiny(tmp_path, digits_dir)
  out = tmp_path / "taken"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  with pytest.raises(ConfigError, match="is not empty"):
    saved_models.write_imported(str(out), model, config, IMPORTED)
  assert os.listdir(out) == ["notes.txt"]
  empty = tmp_path / "empty"
  empty.mkdir()
  saved_models.write_imported(str(empty), model, config, IMPORTED)  # an empty directory is taken
  with pytest.raises(ConfigError, match="is not empty"):  # ... once
    saved_models.write_imported(str(empty), model, config, IMPORTED)
  # Training refuses it: nothing would overwrite or set aside the imported weights.
  with pytest.raises(ConfigError, match="holds imported weights"):
    loop.train_and_evaluate(config, str(empty))
  assert sorted(os.listdir(empty)) == [".lock", wd.CHECKPOINTS, wd.CONFIG, wd.IMPORTED]


def test_a_crash_mid_write_leaves_nothing_behind(tmp_path, digits_dir, monkeypatch):
  model, config = _tiny(tmp_path, digits_dir)

  def crash(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(checkpoints, "save", crash)
  with pytest.raises(KeyboardInterrupt):
    saved_models.write_imported(str(tmp_path / "out"), model, config, IMPORTED)
  assert os.listdir(tmp_path) == []  # neither the directory nor its staging copy


def test_directories_without_a_model_are_clear_errors(tmp_path, digits_dir):
  with pytest.raises(ConfigError, match="does not exist"):
    saved_models.load(str(tmp_path / "nowhere"))
  (tmp_path / "a_file").write_text("x")  # it said "does not exist"
  with pytest.raises(ConfigError, match="a_file is a file, not a directory"):
    saved_models.load(str(tmp_path / "a_file"))
  os.remove(tmp_path / "a_file")
  with pytest.raises(ConfigError, match="holds no model: it has no config.json"):
    saved_models.load(str(tmp_path))
  model, config = _tiny(tmp_path, digits_dir)
  out = tmp_path / "m"
  saved_models.write_imported(str(out), model, config, IMPORTED)
  (out / wd.IMPORTED).write_text('{"source": "test"')  # cut short
  with pytest.raises(wd.CorruptFile, match="imported.json is unreadable"):
    saved_models.load(str(out))
  (out / wd.IMPORTED).write_text(json.dumps(IMPORTED))
  for step in os.listdir(out / wd.CHECKPOINTS):
    for root, _, files in os.walk(out / wd.CHECKPOINTS / step):
      for f in files:
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")
  with pytest.raises(ConfigError, match="every checkpoint .* is unreadable"):
    saved_models.load(str(out))


@needs_torchvision
def test_import_command_torchvision_random(tmp_path):
  """The command, offline: torchvision's random initialization in our squeezenet1_1 (the
  smallest; every network's conversion: test_import_weights), loaded back with the same
  logits as torchvision's network; analyze reads the directory."""
  out = tmp_path / "tv squeezenet"
  proc = commands.run("experiments.import_weights", "--source=torchvision", "--model=squeezenet1_1",
                      f"--out={out}", "--random", "--seed=3", timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  record = json.loads(proc.stdout)
  assert record["weights"] == "random initialization (torch seed 3)"
  assert record["preprocess"]["resize_to"] == 256 and record["num_classes"] == 1000
  loaded = saved_models.load(str(out))
  import torch
  compat.torchvision_models()
  module = importlib.import_module("torchvision.models.squeezenet")
  torch.manual_seed(3)
  net = module.squeezenet1_1(weights=None).eval()
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)  # any size
  with torch.no_grad():
    ref = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  got = np.asarray(nnx.jit(lambda m, v: m(v))(loaded.model, jnp.asarray(x)))
  assert np.abs(got - ref).max() <= network_rtol(loaded.model,
                                                 DEPTH["squeezenet1_1"]) * np.abs(ref).max()
  # The same import again: refused, nothing touched (the command's exit status 2 for such an
  # error: test_import_bad_input_is_one_line).
  listing = sorted(os.listdir(out))
  with pytest.raises(ConfigError, match="is not empty"):
    saved_models.import_to(str(out), "torchvision", "squeezenet1_1", random_seed=0)
  assert sorted(os.listdir(out)) == listing
  report = saved_models.complexity_report(str(out), xla=False)
  expected = registry.abstract_model("squeezenet1_1", reduce=True)
  assert report["total"]["params"] == complexity.count_params(expected) == 1_235_496
  assert report["checkpoint_step"] == 0 and report["model"] == "squeezenet1_1"


def test_import_bad_input_is_one_line(tmp_path, monkeypatch):
  """The library names each bad value; the command prints it as one line, exit status 2. A
  missing --weights_file is named before torchvision is needed (it said "torchvision is not
  installed" first)."""

  def no_torchvision():
    raise ConfigError("torchvision is not installed: pip install -e '.[torch]'")

  monkeypatch.setattr(compat, "torchvision_models", no_torchvision)
  out = str(tmp_path / "o")
  for kwargs, message in [
      (dict(source="caffe", name="googlenet"), "--source='caffe' is invalid; valid: "
       "torchvision, keras"),
      (dict(source="keras", name="googlenet_bn"), "cannot be imported from keras; valid: "
       "inception_v3"),
      (dict(source="torchvision", name="googlenet_bn",
            weights_file="/no/such.pth"), "--weights_file=/no/such.pth does not exist")
  ]:
    with pytest.raises(ConfigError, match=re.escape(message)):
      saved_models.import_to(out, **kwargs)
  proc = commands.run("experiments.import_weights", f"--out={out}", "--model=googlenet_bn",
                      "--random", "--weights_file=x.pth")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --random and --weights_file exclude each other: give one.")
  assert not (tmp_path / "o").exists()
