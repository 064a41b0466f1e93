"""`experiments.fully_conv` on a classifier trained by the training pipeline."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from bottleneck import fully_conv, train
from bottleneck.validation import ConfigError
from configs import digits_fc_head
from tests import ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_dir):
  workdir = str(tmp_path_factory.mktemp("fc") / "runs[2] fc")  # a path, not a glob pattern
  config = digits_fc_head.get_config()
  config.data_dir = digits_dir
  config.num_epochs = 3.0
  config.checkpoint_every_steps = 21  # checkpoints at steps 21, 42, 63
  train.train_and_evaluate(config, workdir)
  return workdir


def test_cli_json_score_map_matches_crops(trained):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.fully_conv", f"--workdir={trained}",
       "--image_size=24", "--num_digits=3", "--format=json"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["checkpoint_step"] == 63
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
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(ConfigError, match=r"--out_dir=.*a_file is a file, not a directory"):
    fully_conv.run(trained, 24, out_dir=str(tmp_path / "a_file"))
  for n in (0, 10):  # a 24x24 canvas holds 9 non-overlapping 8x8 digits
    with pytest.raises(ConfigError, match=rf"--num_digits={n} is invalid: a 24x24 canvas holds "
                                          r"1 to 9 non-overlapping 8x8 digits"):
      fully_conv.run(trained, 24, num_digits=n)
  assert len(fully_conv.run(trained, 24, num_digits=9, out_dir=str(tmp_path / "h"))["digits"]) == 9


def test_an_unreadable_newest_checkpoint_loads_the_one_before_and_says_so(trained, tmp_path,
                                                                          caplog):
  copy = tmp_path / "copy"
  shutil.copytree(trained, copy)
  for root, _, files in os.walk(copy / "checkpoints" / "63"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"not a checkpoint")
  caplog.set_level("WARNING")
  out = fully_conv.run(str(copy), 16, out_dir=str(tmp_path / "h"))
  assert out["checkpoint_step"] == 42
  assert any("loaded the checkpoint at step 42; the newest, step 63, is unreadable"
             in r.getMessage() for r in caplog.records)
  assert os.path.isdir(copy / "checkpoints" / "63")  # a reader moves nothing
