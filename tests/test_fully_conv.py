"""`experiments.fully_conv` on a classifier trained by the training pipeline."""

import json
import os
import subprocess
import sys

import pytest

from bottleneck import fully_conv, train
from bottleneck.validation import ConfigError
from configs import digits_fc_head

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_dir):
  workdir = str(tmp_path_factory.mktemp("fc"))
  config = digits_fc_head.get_config()
  config.data_dir = digits_dir
  config.num_epochs = 3.0
  train.train_and_evaluate(config, workdir)
  return workdir


def test_cli_json_score_map_matches_crops(trained):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.fully_conv", f"--workdir={trained}",
       "--image_size=24", "--num_digits=3", "--format=json"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["input_shape"] == [1, 24, 24, 1]
  assert out["score_map_shape"] == [9, 9, 10]  # (24 - 8) // 2 + 1
  assert out["crops_checked"] == 81 and out["max_abs_diff_vs_crops"] <= 1e-4
  assert len(out["digits"]) == 3
  assert len(out["files"]) == 11 and all(os.path.exists(f) for f in out["files"])


def test_bad_inputs(trained, tmp_path):
  with pytest.raises(ConfigError, match=r"--image_size=7 is too small; the minimum is the "
                                        r"training size 8"):
    fully_conv.run(trained, 7)
  with pytest.raises(ConfigError, match="is not a training workdir"):
    fully_conv.run(str(tmp_path), 16)
  empty = tmp_path / "no_ckpt"
  empty.mkdir()
  (empty / "config.json").write_text(open(os.path.join(trained, "config.json")).read())
  with pytest.raises(ConfigError, match="holds no checkpoint"):
    fully_conv.run(str(empty), 16)
