"""Sweeps: expansion and naming, resume, a failing point, the print and Ray launchers."""

import os
import subprocess
import sys

import pytest

from bottleneck import sweep, workdir as wd
from bottleneck.validation import ConfigError
from tests import tiny_sweep_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def points(tmp_path, sweep_list=None):
  config = tiny_sweep_config.get_config()

  class Module:
    get_sweep = staticmethod(lambda: sweep_list if sweep_list is not None else
                             tiny_sweep_config.get_sweep())
  return sweep.expand(Module, config, str(tmp_path))


def test_expansion_and_names(tmp_path, digits_dir):
  pts = points(tmp_path, [{"reduce": True, "seed": 0}, {"optimizer.learning_rate": 0.1},
                          {"model_kwargs.width": 0.5, "data.flip": True}])
  assert [p.name for p in pts] == ["reduce=True,seed=0", "optimizer.learning_rate=0.1",
                                   "model_kwargs.width=0.5,data.flip=True"]
  assert pts[1].config.optimizer.learning_rate == 0.1 and pts[1].config.reduce is True
  assert pts[2].config.model_kwargs.width == 0.5 and pts[2].config.data.flip is True
  assert pts[0].workdir == os.path.join(str(tmp_path), "reduce=True,seed=0")
  assert sweep.point_name({"dataset": "imagenette/160px"}) == "dataset=imagenette_160px"
  assert sweep.point_name({}) == "default"


def test_bad_sweeps_are_clear_errors(tmp_path, digits_dir):
  with pytest.raises(ConfigError, match=r"no field 'learning_rat'; it has .*learning_rate"):
    points(tmp_path, [{"optimizer.learning_rat": 0.1}])
  with pytest.raises(ConfigError, match=r"the point 'seed=1' twice"):
    points(tmp_path, [{"seed": 1}, {"seed": 1}])
  with pytest.raises(ConfigError, match=r"config file 'nope.py' does not exist"):
    sweep.load_config_file("nope.py")
  with pytest.raises(ConfigError, match=r"unknown variant 'x'"):
    sweep.load_config_file(os.path.join(ROOT, "configs", "digits_inception.py:x"))


def test_config_file_sweep_loads():
  module, config = sweep.load_config_file(os.path.join(ROOT, "configs",
                                                       "digits_inception.py:naive"))
  assert config.reduce is False
  assert len(sweep.expand(module, config, "/tmp/x")) == 6


def test_resume_skips_finished_points_and_a_bad_point_fails_alone(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": 0}, {"image_size": 3}])
  summary = sweep.run(pts)
  assert summary["seed=0"] == "done"
  assert summary["image_size=3"].startswith("failed: ConfigError")
  assert "image_size=3 is too small; the minimum is 4" in summary["image_size=3"]
  error = wd.read_json(os.path.join(pts[1].workdir, sweep.ERROR))
  assert "Traceback" in error["traceback"]
  metrics = os.path.join(pts[0].workdir, wd.METRICS)
  before = os.path.getmtime(metrics)
  again = sweep.run(pts)
  assert again["seed=0"] == "skipped (done)" and again["image_size=3"].startswith("failed")
  assert os.path.getmtime(metrics) == before
  text = sweep.format_summary(again, str(tmp_path))
  assert "1/2 points finished" in text


def test_interrupted_point_resumes(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": 0}])
  sweep.run_point(pts[0].config.to_dict(), pts[0].workdir)
  os.remove(os.path.join(pts[0].workdir, wd.RESULT))  # as if killed after the last checkpoint
  assert sweep.status(pts[0]) == "started"
  assert sweep.run(pts) == {"seed=0": "done"}


def test_print_launcher_cli():
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.sweep", f"--config={ROOT}/configs/digits_inception.py",
       "--workdir=/tmp/unused_sweep", "--launcher=print"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 6
  assert "-m experiments.train" in lines[0] and "--config.reduce=True" in lines[0]
  assert "--config.seed=2" in lines[-1] and "reduce=False,seed=2" in lines[-1]


def test_ray_launcher_end_to_end(tmp_path, digits_dir):
  pytest.importorskip("ray")
  pts = points(tmp_path)
  summary = sweep.run(pts, launcher="ray")
  assert summary == {"reduce=True,seed=0": "done", "reduce=False,seed=0": "done"}
  for p in pts:
    assert wd.read_json(os.path.join(p.workdir, wd.RESULT))["train_steps"] == 8


def test_parallel_workers(tmp_path, digits_dir):
  pts = points(tmp_path)
  assert set(sweep.run(pts, parallel=2).values()) == {"done"}
  with pytest.raises(ConfigError, match=r"--parallel=0 is invalid"):
    sweep.run(pts, parallel=0)
