"""Workdir files: atomic writes with the usual mode, unreadable files named, the lock, set-aside,
paths that are not patterns."""

import json
import os
import signal
import subprocess
import sys

import pytest

from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError, UserError
from tests import ODD, ROOT


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
  old = os.umask(0o022)
  try:
    wd.write_json(str(tmp_path / "config.json"), {"a": 1})
    wd.atomic_write_text(str(tmp_path / "REPORT.md"), "x")
  finally:
    os.umask(old)
  for name in ("config.json", "REPORT.md"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary left


def test_unreadable_and_incomplete_json_name_the_file(tmp_path):
  path = tmp_path / "result.json"
  path.write_text('{"model": "x", "redu')  # cut short by a kill
  with pytest.raises(wd.CorruptFile, match=r"result.json is unreadable \(JSONDecodeError"):
    wd.read_json(str(path))
  path.write_text(json.dumps({"model": "x"}))
  with pytest.raises(wd.CorruptFile, match=r"result.json is incomplete: it lacks reduce, seed"):
    wd.read_json(str(path), required=("model", "reduce", "seed"))
  assert issubclass(wd.CorruptFile, UserError)  # one line on the command line
  # valid JSON, but not the object a run writes: its readers' `.get` raised AttributeError
  path.write_text('["a list"]')
  with pytest.raises(
      wd.CorruptFile, match=r"result.json is invalid: it holds list "
      r"\"\['a list'\]\", not a JSON object"):
    wd.read_json(str(path), mapping=True)
  assert wd.read_json(str(path)) == ["a list"]  # a cached table may be a list


def test_metrics_rows_that_are_not_rows_are_skipped_and_said(tmp_path, caplog):
  """A metrics.jsonl line that is JSON but not a row (an edit, another program's) raised
  KeyError or TypeError in a resumed run and in the training curves."""
  from bottleneck.train import rundir
  path = tmp_path / wd.METRICS
  path.write_text('{"step": 4, "split": "train", "loss": 1.0, "train_time_s": "soon"}\n'
                  '[4]\n{"split": "eval"}\n{"step": "8", "split": "eval"}\n'
                  '{"step": 8, "split": "eval", "accuracy": 0.5}\n{"step": 12, "spl')
  caplog.set_level("WARNING")
  rows = wd.read_metrics(str(path))
  assert [r["step"] for r in rows] == [4, 8]
  assert "metrics.jsonl: line(s) 2, 3, 4 are not metrics rows" in caplog.text  # not line 6
  assert rundir.training_time_before(rows, 4) is None  # unknown, not "soon" + seconds


def test_find_files_treats_the_directory_as_a_path_and_skips_set_aside(tmp_path):
  root = tmp_path / ODD
  for sub in ("a", "b/c", ".set_aside/20260101-000000/a"):
    wd.write_json(str(root / sub / "result.json"), {})
  (tmp_path / "runs2").mkdir()  # would match the pattern "runs[2]" if it were one
  wd.write_json(str(tmp_path / "runs2" / "result.json"), {})
  found = wd.find_files(str(root), "result.json")
  assert found == [str(root / "a" / "result.json"), str(root / "b" / "c" / "result.json")]


_HOLD = """
import sys, time
from bottleneck.util import workdir as wd
with wd.lock(sys.argv[1]):
  print("locked", flush=True)
  time.sleep(120)
"""


def test_lock_refuses_a_second_process_naming_the_holder_and_frees_when_it_dies(tmp_path):
  root = ROOT
  holder = subprocess.Popen(
      [sys.executable, "-c", _HOLD, str(tmp_path / ODD)], cwd=root, stdout=subprocess.PIPE,
      text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(
        wd.WorkdirBusy, match=rf"is in use by PID {holder.pid} on host \S+ "
        r"\(since .*\); wait for it to finish"):
      with wd.lock(str(tmp_path / ODD)):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with wd.lock(str(tmp_path / ODD)):  # a dead holder's lock is free: no stale lock to clear
    pass
  with wd.lock(str(tmp_path / ODD)):  # and released on leaving the block
    pass


def test_lock_on_an_unusable_path_is_a_clear_error(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(ConfigError, match=r"--workdir=.*file is a file, not a directory"):
    with wd.lock(str(tmp_path / "file")):
      pass
  with pytest.raises(ConfigError, match=r"cannot be created"):
    with wd.lock(str(tmp_path / "file" / "sub")):
      pass


def test_set_aside_moves_never_deletes(tmp_path):
  (tmp_path / "checkpoints" / "8").mkdir(parents=True)
  (tmp_path / "checkpoints" / "8" / "data").write_text("old")
  (tmp_path / "result.json").write_text("{}")
  first = wd.set_aside(str(tmp_path), ["checkpoints/8", "result.json", "absent"], "why: test")
  assert open(os.path.join(first, "checkpoints", "8", "data")).read() == "old"
  assert open(os.path.join(first, "README")).read() == "why: test\n"
  assert not (tmp_path / "result.json").exists() and (tmp_path / "checkpoints").exists()
  (tmp_path / "result.json").write_text("{}")
  second = wd.set_aside(str(tmp_path), ["result.json"], "again")
  assert second != first and os.path.exists(os.path.join(second, "result.json"))
  assert wd.set_aside(str(tmp_path), ["absent"], "nothing") is None
  assert not wd.has_checkpoints(str(tmp_path))
