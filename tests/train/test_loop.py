"""Training: outputs, resume (SIGKILL included), corrupt checkpoints, guard rails, data
parallelism. Tiny configs on the embedded digits; no test downloads anything."""

import contextlib
import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bottleneck.data import pipeline
from bottleneck.measure import complexity
from bottleneck.nn import layers
from bottleneck.nn.paths import Paths
from bottleneck.train import builders, checkpoints, loop, saved_models, seeds, steps, sweep
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError
from tests import ODD, ROOT, commands, interruptible, sigterm_when, tiny_train_config
from tests.numerics import assert_matches


def tiny_config(digits_dir, **overrides):
  return tiny_train_config.get_config(data_dir=digits_dir, **overrides)


def run_cli(workdir, digits_dir, *extra, env=None, wait=True):
  cmd = [
      sys.executable, "-m", "experiments.train", f"--config={ROOT}/tests/tiny_train_config.py",
      f"--workdir={workdir}", f"--config.data_dir={digits_dir}", *extra
  ]
  kwargs = dict(cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if not wait:
    interruptible()
    return subprocess.Popen(cmd, **kwargs)
  return commands.run(*cmd[2:], env={"JAX_PLATFORMS": "cpu", **(env or {})}, timeout=600)


# The network the project is about, at an eighth of its widths (the other tests train the
# faster flatten_head_cnn of the tiny config).
INCEPTION = {
    "model": "inception_small", "model_kwargs.width": 0.125, "model_kwargs.hidden": None,
    "model_kwargs.batch_norm": None
}


def test_train_writes_every_output_and_learns(tmp_path, digits_dir):
  result = loop.train_and_evaluate(tiny_config(digits_dir, **INCEPTION), str(tmp_path))
  assert result["model"] == "inception_small"
  for name in (wd.CONFIG, wd.METRICS, wd.RESULT):
    assert os.path.exists(tmp_path / name)
  assert os.listdir(tmp_path / wd.TENSORBOARD)
  assert sorted(os.listdir(tmp_path / wd.CHECKPOINTS)) == ["16", "24"]  # the last 2 kept
  rows = wd.read_jsonl(str(tmp_path / wd.METRICS))
  train_rows = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train_rows] == [4, 8, 12, 16, 20, 24]
  assert {"loss", "accuracy", "learning_rate", "examples_per_s"} <= set(train_rows[0])
  assert all(np.isfinite(r["loss"]) for r in train_rows)
  assert train_rows[-1]["loss"] < train_rows[0]["loss"]
  assert train_rows[-1]["accuracy"] > train_rows[0]["accuracy"]
  assert rows[-1]["split"] == "eval" and rows[-1]["step"] == 24
  on_disk = wd.read_json(str(tmp_path / wd.RESULT))
  assert on_disk == json.loads(json.dumps(result, default=str))
  for key in ("model", "reduce", "dataset", "params", "macs", "flops_xla", "eval_accuracy",
              "eval_loss", "train_steps", "train_time_s", "compile_time_s", "examples_per_s",
              "device", "jax_version", "seed", "config"):
    assert key in result, key
  assert result["train_steps"] == 24
  # The reported evaluation is the model's: the last checkpoint, run on every test example
  # here in one batch, gives the same accuracy and loss (the padded last batch is masked out).
  loaded = saved_models.load(str(tmp_path))
  model, config = loaded.model, loaded.config
  assert loaded.step == 24
  split = pipeline.load_splits(config.dataset, (config.eval_split,), digits_dir)[config.eval_split]
  images, labels = split.read(range(len(split)))
  x = pipeline.Preprocess(config.image_size, model.in_channels, mean=config.data.mean,
                          std=config.data.std)(images, train=False)
  logits = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(x))  # one compile, not one per op
  correct = int(np.sum(np.argmax(logits, -1) == labels))
  assert correct == round(result["eval_accuracy"] * len(labels))
  assert float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()) == \
      pytest.approx(result["eval_loss"], rel=1e-5)
  assert wd.read_json(str(tmp_path / wd.CONFIG))["optimizer"]["learning_rate"] == 0.05
  # "auto" paths are recorded as taken on this backend (test_paths pins which those are).
  assert result["paths"] == Paths().resolve().as_dict()
  assert "auto" not in result["paths"].values()


def test_paths_reach_the_model(tmp_path, digits_dir):
  config = tiny_config(
      digits_dir, **{"paths.conv_1x1": "xla", "paths.max_pool": "xla", "paths.conv_library": "xla"})
  model = builders.build_model(config, num_classes=10)
  units = [m for _, m in nnx.iter_modules(model) if isinstance(m, layers.ConvUnit)]
  pools = [m for _, m in nnx.iter_modules(model) if isinstance(m, layers.MaxPool)]
  assert units and pools
  assert {u.paths for u in units} == {p.paths for p in pools} == {
      Paths(conv_1x1="xla", max_pool="xla", conv_library="xla").resolve()
  }
  # One place for them: a path named as a model argument is refused, saying where it goes.
  both = tiny_config(digits_dir, **{"paths.conv_1x1": "xla"})
  both.model_kwargs.conv_1x1 = "matmul"
  with pytest.raises(ConfigError, match=r"'conv_1x1' is a path.*config.paths.conv_1x1"):
    builders.build_model(both, num_classes=10)
  with pytest.raises(ConfigError, match="unknown max_pool 'fast'"):
    builders.build_model(tiny_config(digits_dir, **{"paths.max_pool": "fast"}), num_classes=10)
  # The library is a compiler option of the train step: checked before anything is written.
  with pytest.raises(ConfigError, match="config: unknown conv_library 'ynnpack'"):
    loop.train_and_evaluate(tiny_config(digits_dir, **{"paths.conv_library": "ynnpack"}),
                            str(tmp_path))
  assert not os.listdir(tmp_path)


def test_finished_workdir_is_not_trained_again(tmp_path, digits_dir):
  config = tiny_config(digits_dir, num_train_steps=8)
  first = loop.train_and_evaluate(config, str(tmp_path))
  before = os.path.getmtime(tmp_path / wd.METRICS)
  again = loop.train_and_evaluate(config, str(tmp_path))
  assert again == json.loads(json.dumps(first, default=str))
  assert os.path.getmtime(tmp_path / wd.METRICS) == before


def test_workdir_with_another_config_is_refused(tmp_path, digits_dir):
  loop.train_and_evaluate(tiny_config(digits_dir, num_train_steps=8), str(tmp_path))
  with pytest.raises(ConfigError, match=r"different config \(optimizer.learning_rate: 0.05 "
                     r"there, 0.1 now\)"):
    loop.train_and_evaluate(
        tiny_config(digits_dir, num_train_steps=8, **{"optimizer.learning_rate": 0.1}),
        str(tmp_path))


def _corrupt(directory):
  for root, _, files in os.walk(directory):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"not a checkpoint")


def test_corrupt_checkpoints_are_set_aside_and_saved_again(tmp_path, digits_dir, caplog):
  config = tiny_config(digits_dir)
  reference = loop.train_and_evaluate(config, str(tmp_path / "ref"))
  # A workdir with checkpoints 16 and 24 of the 24-step run and a corrupt 24.
  work = tmp_path / "run"
  loop.train_and_evaluate(config, str(work))
  os.remove(work / wd.RESULT)
  _corrupt(work / wd.CHECKPOINTS / "24")
  caplog.set_level("WARNING")
  resumed = loop.train_and_evaluate(config, str(work))
  assert any("step 24" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
  assert resumed["eval_loss"] == pytest.approx(reference["eval_loss"], abs=1e-6)
  steps = [r["step"] for r in wd.read_jsonl(str(work / wd.METRICS)) if r["split"] == "train"]
  assert steps == sorted(set(steps))  # rows after the restored step were not duplicated
  # The corrupt step was moved aside, not deleted, and step 24 was saved anew.
  assert sorted(os.listdir(work / wd.CHECKPOINTS)) == ["16", "24"]
  (aside,) = os.listdir(work / wd.SET_ASIDE)
  assert os.listdir(work / wd.SET_ASIDE / aside / wd.CHECKPOINTS) == ["24"]
  # Every kept checkpoint corrupt: the rerun starts over and its saves happen (orbax would
  # skip every save at or below a step it still lists).
  os.remove(work / wd.RESULT)
  for step in ("16", "24"):
    _corrupt(work / wd.CHECKPOINTS / step)
  again = loop.train_and_evaluate(config, str(work))
  assert again["eval_loss"] == pytest.approx(reference["eval_loss"], abs=1e-6)
  assert sorted(os.listdir(work / wd.CHECKPOINTS)) == ["16", "24"]
  step = saved_models.load(str(work)).step
  assert step == 24  # readable again
  assert len(os.listdir(work / wd.SET_ASIDE)) == 3


def test_a_diverged_run_does_not_block_its_fix(tmp_path, digits_dir):
  bad = {"optimizer.learning_rate": 1e30, "optimizer.momentum": 0.0, "num_train_steps": 8}
  # Diverged before its first checkpoint: the corrected config is simply taken.
  with pytest.raises(loop.TrainingDiverged, match=r"loss became nan at step \d+.*--restart"):
    loop.train_and_evaluate(tiny_config(digits_dir, **bad), str(tmp_path / "a"))
  assert not os.path.exists(tmp_path / "a" / wd.RESULT)
  fixed = tiny_config(digits_dir, num_train_steps=8)
  assert loop.train_and_evaluate(fixed, str(tmp_path / "a"))["train_steps"] == 8
  # Diverged after checkpoints: they belong to the bad config, so the fix needs --restart.
  with pytest.raises(loop.TrainingDiverged):
    loop.train_and_evaluate(tiny_config(digits_dir, checkpoint_every_steps=1, **bad),
                            str(tmp_path / "b"))
  assert wd.has_checkpoints(str(tmp_path / "b"))
  with pytest.raises(
      ConfigError, match=r"different config \(.*learning_rate: 1e\+30 there, "
      r"0.05 now.*\)\. Rerun with --restart"):
    loop.train_and_evaluate(fixed, str(tmp_path / "b"))
  result = loop.train_and_evaluate(fixed, str(tmp_path / "b"), restart=True)
  assert result["train_steps"] == 8 and np.isfinite(result["eval_loss"])
  (aside,) = os.listdir(tmp_path / "b" / wd.SET_ASIDE)  # the diverged run, kept
  assert wd.read_json(str(tmp_path / "b" / wd.SET_ASIDE / aside
                          / wd.CONFIG))["optimizer"]["learning_rate"] == 1e30


@contextlib.contextmanager
def _sigterm_after_a_checkpoint_in(workdir):
  """Within the block, this process gets SIGTERM once `workdir` has a checkpoint (a
  scheduler's preemption); a late signal is ignored after it, so it cannot kill the tests."""
  original = signal.signal(signal.SIGTERM, lambda *_: None)

  def terminate():
    while not wd.has_checkpoints(workdir):
      time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=terminate, daemon=True).start()
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, original)


def test_sigterm_saves_this_step_and_stops(tmp_path, digits_dir):
  """A scheduler's preemption: SIGTERM checkpoints the step the run is at, then it stops."""
  with _sigterm_after_a_checkpoint_in(str(tmp_path)):
    with pytest.raises(
        loop.Interrupted, match=r"interrupted \(SIGTERM\) at step (\d+) of 4000; "
        r"the checkpoint at step \1 is saved"):
      loop.train_and_evaluate(tiny_config(digits_dir, num_train_steps=4000), str(tmp_path))
  step = saved_models.load(str(tmp_path)).step
  rows = [r for r in wd.read_jsonl(str(tmp_path / wd.METRICS)) if r["step"] == step]
  assert step < 4000 and rows and "train_time_s" in rows[-1]  # resumable, time included


@pytest.mark.parametrize("where", ["last checkpoint", "final evaluation"])
def test_a_signal_at_the_end_of_a_run_still_stops_the_work(tmp_path, digits_dir, monkeypatch,
                                                           where):
  """A signal as the last step is saved, or during the final evaluation, used to be lost: the
  run said "done" and a sweep went on with its next point. Now the run finishes (its result
  is saved) and then raises Interrupted."""
  config = tiny_config(digits_dir, num_train_steps=6, checkpoint_every_steps=3)
  if where == "last checkpoint":
    signal_at = sigterm_when(monkeypatch, checkpoints, "save", lambda m, step, *_: step == 6)
  else:
    signal_at = sigterm_when(monkeypatch, steps, "evaluate", lambda *_: True)
  with signal_at as sent, pytest.raises(KeyboardInterrupt) as stopped:
    loop.train_and_evaluate(config, str(tmp_path))
  assert sent and isinstance(stopped.value, loop.Interrupted), stopped.value
  assert "at the end of the run: all 6 steps are trained" in str(stopped.value)
  assert wd.read_json(str(tmp_path / wd.RESULT))["train_steps"] == 6


def test_a_locked_workdir_is_refused_at_once(tmp_path, digits_dir):
  with wd.lock(str(tmp_path)):  # flock excludes open files: this stands for another process
    with pytest.raises(wd.WorkdirBusy, match=r"is in use by PID \d+ on host"):
      loop.train_and_evaluate(tiny_config(digits_dir), str(tmp_path))
  assert os.listdir(tmp_path) == [wd.LOCK]


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"image_size": 3}, r"image_size=3 is too small; the minimum is 6"),
        ({"dataset": "digitz"}, r"unknown dataset 'digitz'.*Did you mean 'digits'"),
        ({"model": "inception_v4"}, r"unknown model 'inception_v4'"),
        ({"optimizer.name": "adam"}, r"unknown optimizer.name 'adam'; valid: sgd, adamw"),
        ({"optimizer.schedule": "linear"}, r"unknown optimizer.schedule 'linear'"),
        # Overlapping slices of one split pass the config's own check; the data's sizes tell.
        ({"train_split": "train[:200]", "validation_split": "train[150:]"
         }, r"validation_split='train\[150:\]' shares 50 examples with the split 'train\[:200\]'"),
        ({"train_split": "train[:20]"}, r"batch_size=\d+ is larger than the train\[:20\] split"),
        # Found shortening configs/imagenette_googlenet.py (2 epochs of warm-up) to a few steps:
        # optax's ValueError traceback.
        ({"optimizer.schedule": "cosine", "optimizer.warmup_epochs": 5.0, "num_train_steps": 4},
         r"optimizer.warmup_epochs=5.0 is \d+ steps \(\d+ per epoch\), not fewer than the run's 4"),
    ])
def test_bad_config_is_a_clear_error(tmp_path, digits_dir, overrides, match):
  with pytest.raises(ConfigError, match=match):
    loop.train_and_evaluate(tiny_config(digits_dir, **overrides), str(tmp_path))
  assert not os.path.exists(tmp_path / wd.CONFIG)  # nothing blocks the corrected rerun


def test_corrected_config_reruns_in_the_same_workdir(tmp_path, digits_dir):
  with pytest.raises(ConfigError):
    loop.train_and_evaluate(tiny_config(digits_dir, image_size=3), str(tmp_path))
  result = loop.train_and_evaluate(tiny_config(digits_dir, num_train_steps=4), str(tmp_path))
  assert result["train_steps"] == 4


def _steps(workdir) -> list[int]:
  directory = workdir / wd.CHECKPOINTS
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if directory.exists() else []


def _stop_after_a_new_checkpoint(proc, workdir, sig):
  """Sends `sig` to `proc` once a checkpoint newer than the ones there now has been saved."""
  seen = max(_steps(workdir), default=0)
  deadline = time.time() + 300
  while max(_steps(workdir), default=0) <= seen and proc.poll() is None \
      and time.time() < deadline:
    time.sleep(0.02)
  os.kill(proc.pid, sig)
  return proc.communicate(timeout=300)


# Checkpoints every 40 steps, not 8: the saves, not the steps, take most of a run's time.
LONG_RUN = ("--config.num_train_steps=240", "--config.checkpoint_every_steps=40")


def test_data_workers_train_the_numbers_of_none_and_resume_alike(tmp_path, digits_dir):
  """`data.workers=2` (batches made ahead in worker processes) ends with exactly the numbers
  of `data.workers=0`; resumed from its checkpoint at step 16 (the last checkpoint and the
  result lost), it sees the batches of the uninterrupted run and ends the same again."""
  none = loop.train_and_evaluate(tiny_config(digits_dir, **{"data.workers": 0}),
                                 str(tmp_path / "none"))
  work = tmp_path / "two"
  config = tiny_config(digits_dir, **{"data.workers": 2})
  two = loop.train_and_evaluate(config, str(work))
  numbers = lambda r: {k: r[k] for k in ("eval_loss", "eval_accuracy", "train_steps")}
  assert numbers(two) == numbers(none)
  rows = lambda w: [(r["step"], r["loss"])
                    for r in wd.read_jsonl(str(w / wd.METRICS))
                    if r["split"] == "train"]
  assert rows(work) == rows(tmp_path / "none")  # every logged loss, bit for bit
  predictions = (work / wd.PREDICTIONS).read_bytes()
  os.remove(work / wd.RESULT)
  shutil.rmtree(work / wd.CHECKPOINTS / "24")
  resumed = loop.train_and_evaluate(config, str(work))
  assert numbers(resumed) == numbers(none)
  assert rows(work) == rows(tmp_path / "none")
  assert (work / wd.PREDICTIONS).read_bytes() == predictions


def test_evaluations_along_the_run_keep_their_predictions_and_resume_alike(tmp_path, digits_dir):
  """Every 0.2 epochs (7 steps, off the logging's 4) the test split and a validation split held
  out of the training images are scored: a metrics row with the training time so far and a
  predictions file each. A run resumed from step 16 scores steps 21 and 24 as before."""
  config = tiny_config(digits_dir, train_split="train[200:]", validation_split="train[:200]",
                       eval_every_epochs=0.2)
  work = tmp_path / "run"
  loop.train_and_evaluate(config, str(work))
  scored = lambda: [r for r in wd.read_jsonl(str(work / wd.METRICS)) if r["split"] != "train"]
  rows = scored()
  assert [(r["step"], r["split"]) for r in rows
         ] == [(s, split) for s in (7, 14, 21, 24) for split in ("eval", "validation")]
  files = {}
  for r in rows:
    path = work / wd.EVALUATIONS / f"{r['split']}-{r['step']}.npz"
    predicted, labels = wd.read_predictions(str(path))
    assert len(labels) == (450 if r["split"] == "eval" else 200)
    assert r["accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-12)
    files[path] = path.read_bytes()
  times = [r["train_time_s"] for r in rows]
  assert times == sorted(times) and times[0] > 0
  np.testing.assert_array_equal(
      wd.read_predictions(str(work / wd.PREDICTIONS))[0],
      wd.read_predictions(str(work / wd.EVALUATIONS / "eval-24.npz"))[0])
  # A crash after step 16's checkpoint: the later evaluations are computed again, the same.
  os.remove(work / wd.RESULT)
  shutil.rmtree(work / wd.CHECKPOINTS / "24")
  for step in (21, 24):
    for split in ("eval", "validation"):
      os.remove(work / wd.EVALUATIONS / f"{split}-{step}.npz")
  loop.train_and_evaluate(config, str(work))
  without_time = lambda rs: [{k: v for k, v in r.items() if k != "train_time_s"} for r in rs]
  assert without_time(scored()) == without_time(rows)
  assert {p: p.read_bytes() for p in files} == files


def test_ctrl_c_checkpoints_the_step_it_is_at_and_says_how_to_resume(tmp_path, digits_dir):
  workdir = tmp_path / ODD  # brackets, a star, a space: a path, not a glob pattern
  # Ctrl-C: the in-flight checkpoint is finished; one line says how to resume; exit 130.
  proc = run_cli(workdir, digits_dir, *LONG_RUN, wait=False)
  _, err = _stop_after_a_new_checkpoint(proc, workdir, signal.SIGINT)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err
  stopped = re.search(
      r"interrupted \(SIGINT\) at step (\d+) of 240; the checkpoint at step "
      r"(\d+) is saved\. Rerun the same command to resume\.", err)
  assert stopped and stopped[1] == stopped[2], err[-2000:]
  assert int(stopped[1]) < 240 and not (workdir / wd.RESULT).exists()
  # The step it names is the newest checkpoint, and it loads.
  assert max(_steps(workdir)) == int(stopped[1])
  assert saved_models.load(str(workdir)).step == int(stopped[1])


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path, digits_dir):
  a = loop.train_and_evaluate(  # one checkpoint, at the end: the saves take the time
      tiny_config(digits_dir, num_train_steps=240, checkpoint_every_steps=240), str(tmp_path / "r"))
  killed = tmp_path / ODD
  steps = LONG_RUN
  # SIGKILL, possibly during a checkpoint write.
  proc = run_cli(killed, digits_dir, *steps, wait=False)
  _stop_after_a_new_checkpoint(proc, killed, signal.SIGKILL)
  assert proc.returncode == -signal.SIGKILL
  assert not (killed / wd.RESULT).exists(), "the run finished before it could be killed"
  resumed = run_cli(killed, digits_dir, *steps)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming from the checkpoint at step" in resumed.stderr
  assert "unreadable" not in resumed.stderr  # the path's brackets do not hide the checkpoints
  b = wd.read_json(str(killed / wd.RESULT))
  assert b["train_steps"] == a["train_steps"] == 240
  assert b["eval_loss"] == pytest.approx(a["eval_loss"], abs=1e-6)
  assert b["eval_accuracy"] == a["eval_accuracy"]
  assert b["examples_per_s"] > 0 and b["train_time_s"] > 0
  again = loop.train_and_evaluate(
      tiny_config(digits_dir, num_train_steps=240, checkpoint_every_steps=40), str(killed))
  assert again == b  # finished: read, not trained again


def test_two_devices_match_one(tmp_path, digits_dir):
  # (conftest's compile flags kept: the run compiles in half the time)
  two = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
  # Every step logged: the batch is split over the devices but the math is the same, so the
  # losses agree to float rounding. Over more steps this tiny model amplifies rounding: split
  # weight-gradient sums round differently, and a near-tie in a max pool can then flip (seen
  # here: 1e-6 at step 4, 5e-3 at step 6), so only the first steps are compared.
  short = ("--config.num_train_steps=4", "--config.log_every_steps=1")
  loop.train_and_evaluate(tiny_config(digits_dir, num_train_steps=4, log_every_steps=1),
                          str(tmp_path / "one"))  # this process: one device
  pair = run_cli(tmp_path / "two", digits_dir, *short, env=two)
  assert pair.returncode == 0, pair.stderr[-2000:]
  a = wd.read_json(str(tmp_path / "one" / wd.RESULT))
  b = wd.read_json(str(tmp_path / "two" / wd.RESULT))
  assert " x " not in a["device"] and b["device"].startswith("2 x ")
  rows_a = wd.read_jsonl(str(tmp_path / "one" / wd.METRICS))
  rows_b = wd.read_jsonl(str(tmp_path / "two" / wd.METRICS))
  assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] == [1, 2, 3, 4, 4]
  for ra, rb in zip(rows_a, rows_b):
    assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-4)
    assert rb["accuracy"] == ra["accuracy"]
  # (A batch the devices cannot split is refused: tests/util/test_cli.py, "odd_batch".)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# Two processes' runs: 60 steps, a checkpoint every 20.
TWO_PROCESS_STEPS = ("--config.num_train_steps=60", "--config.log_every_steps=2",
                     "--config.checkpoint_every_steps=20")


def _two_processes(workdir, digits_dir, *more):
  """The tiny config started as two processes of one run (one CPU device each) in `workdir`."""
  port = _free_port()
  return [
      run_cli(workdir, digits_dir, *TWO_PROCESS_STEPS, *more, "--distributed",
              f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
              wait=False) for i in (0, 1)
  ]


def _ends_as_one_process(tmp_path, digits_dir, hosts):
  """The finished two-process run in `hosts` ends where one process of two devices ends
  uninterrupted, step by step, each row written once (process 0 writes)."""
  two = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
  alone = run_cli(tmp_path / "alone", digits_dir, *TWO_PROCESS_STEPS, env=two)
  assert alone.returncode == 0, alone.stderr[-2000:]
  a = wd.read_json(str(tmp_path / "alone" / wd.RESULT))
  b = wd.read_json(str(hosts / wd.RESULT))
  assert b["train_steps"] == a["train_steps"] == 60
  assert b["eval_accuracy"] == a["eval_accuracy"]
  assert b["eval_loss"] == pytest.approx(a["eval_loss"], abs=1e-6)
  # The programs are the same partitioned ones; only the collectives differ (gloo between
  # processes), and a sum of two devices' parts is the same either way (a + b == b + a in
  # IEEE arithmetic): bitwise equal here, so 1e-6 (a few float32 ulps of a loss near 2) only
  # allows a library that reduced in another order.
  rows_a = {(r["split"], r["step"]): r for r in wd.read_jsonl(str(tmp_path / "alone" / wd.METRICS))}
  rows_b = wd.read_jsonl(str(hosts / wd.METRICS))
  keys = [(r["split"], r["step"]) for r in rows_b]
  assert len(keys) == len(set(keys))  # rows after the checkpoint were dropped at the rerun
  for r in rows_b:
    if (r["split"], r["step"]) in rows_a and "loss" in r:
      assert r["loss"] == pytest.approx(rows_a[(r["split"], r["step"])]["loss"], abs=1e-6)


def test_a_signal_to_one_of_two_processes_stops_both_at_one_checkpoint(tmp_path, digits_dir):
  """A scheduler's SIGTERM reaches the processes of a run at different steps: each stops at the
  step any of them was signalled at, both save that checkpoint (a process stopping alone left
  the other waiting in the next collective), and the rerun ends where one process of two
  devices ends uninterrupted, step by step (two processes of one CPU device each train what one
  process of two devices trains: each reads and feeds its half of every batch). Before the
  signal each process's batches are made by a data worker; the rerun makes them itself."""
  hosts = tmp_path / "hosts"
  procs = _two_processes(hosts, digits_dir, "--config.data.workers=1")
  deadline = time.time() + 300
  while not (hosts / wd.METRICS).exists() or not wd.read_jsonl(str(hosts / wd.METRICS)):
    assert all(p.poll() is None for p in procs) and time.time() < deadline
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)
  errs = [p.communicate(timeout=300)[1] for p in procs]
  assert [p.returncode for p in procs] == [130, 130], [e[-2000:] for e in errs]
  stopped = [re.search(r"interrupted \(SIGTERM\) at step (\d+) of 60", e) for e in errs]
  assert all(stopped) and stopped[0].group(1) == stopped[1].group(1), errs[0][-1000:]
  assert (hosts / wd.CHECKPOINTS / stopped[0].group(1)).is_dir()
  procs = _two_processes(hosts, digits_dir)
  outs = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
  _ends_as_one_process(tmp_path, digits_dir, hosts)


@pytest.mark.slow
def test_two_processes_killed_together_resume_as_one_process_ends(tmp_path, digits_dir):
  """Both processes SIGKILLed once a checkpoint is saved (a job killed, a node lost; the next
  save may be half written): each rerun process resumes from the newest checkpoint every
  process can read, and the run ends where one process of two devices ends uninterrupted."""
  hosts = tmp_path / "hosts"
  procs = _two_processes(hosts, digits_dir)
  deadline = time.time() + 300
  while not _steps(hosts) and all(p.poll() is None for p in procs):
    assert time.time() < deadline
    time.sleep(0.02)
  for p in procs:
    p.kill()
  for p in procs:
    p.communicate(timeout=60)
  assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, "a process ended before the kill"
  assert not (hosts / wd.RESULT).exists()
  procs = _two_processes(hosts, digits_dir)
  outs = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
  assert all("resuming from the checkpoint at step" in err for _, err in outs)
  _ends_as_one_process(tmp_path, digits_dir, hosts)


def test_bfloat16_compute_trains(tmp_path, digits_dir):
  result = loop.train_and_evaluate(tiny_config(digits_dir, dtype="bfloat16", num_train_steps=8),
                                   str(tmp_path))
  rows = [r for r in wd.read_jsonl(str(tmp_path / wd.METRICS)) if r["split"] == "train"]
  assert all(np.isfinite(r["loss"]) for r in rows) and np.isfinite(result["eval_loss"])


def test_a_budget_sets_the_width_and_is_recorded(tmp_path, digits_dir):
  # The tiny config's width (0.5) is replaced by the one found, and the result says so.
  config = tiny_config(digits_dir, match_params=20_000, num_train_steps=4)
  result = loop.train_and_evaluate(config, str(tmp_path))
  match = result["match"]
  assert match["metric"] == "params" and match["budget"] == 20_000
  assert match["replaced_width"] == 0.5 and match["width"] != 0.5
  assert match["cost"] == result["params"] and abs(result["params"] - 20_000) <= 200
  loaded = saved_models.load(str(tmp_path))  # rebuilt from config.json at the same width
  assert complexity.count_params(loaded.model) == result["params"]


# --- seeds trained together ------------------------------------------------------------------


def _params(workdir):
  return jax.tree.leaves(nnx.state(saved_models.load(workdir).model, nnx.Param))


def test_seeds_trained_together_are_each_trained_alone(tmp_path, digits_dir):
  """train_seeds: the seeds of one config as one vmapped program. Each run keeps its own
  initialisation, data order, workdir, metrics and checkpoints, and its numbers are those of
  training it alone to float rounding (over a few steps: later, a near-tie in a max pool can
  flip and amplify rounding, as test_two_devices_match_one explains)."""
  short = dict(num_train_steps=4, log_every_steps=1, checkpoint_every_steps=2)
  configs = [tiny_config(digits_dir, seed=s, **short) for s in (0, 1, 2)]
  dirs = [str(tmp_path / f"together{s}") for s in (0, 1, 2)]
  together = seeds.train_seeds(configs, dirs)
  alone = loop.train_and_evaluate(configs[1], str(tmp_path / "alone1"))
  assert [r["seed"] for r in together] == [0, 1, 2]
  assert together[1]["seeds_together"] == [0, 1, 2] and alone["seeds_together"] is None
  assert together[1]["eval_loss"] == pytest.approx(alone["eval_loss"], abs=1e-5)
  assert together[1]["eval_accuracy"] == alone["eval_accuracy"]
  rows = [wd.read_jsonl(os.path.join(d, wd.METRICS)) for d in (dirs[1], tmp_path / "alone1")]
  assert [(r["step"], r["split"]) for r in rows[0]] == [(r["step"], r["split"]) for r in rows[1]]
  for a, b in zip(*rows):
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
  for a, b in zip(_params(dirs[1]), _params(str(tmp_path / "alone1"))):
    np.testing.assert_allclose(a, b, atol=1e-5)
  # Each seed is its own run: its own initialisation and data order.
  assert len({r["eval_loss"] for r in together}) == 3
  assert not all(np.allclose(a, b) for a, b in zip(_params(dirs[0]), _params(dirs[2])))
  for d in dirs:
    assert sorted(os.listdir(os.path.join(d, wd.CHECKPOINTS))) == ["2", "4"]
  assert seeds.train_seeds(configs, dirs) == together  # finished: read, not trained again


def test_seeds_resume_together_or_say_they_cannot(tmp_path, digits_dir):
  configs = [
      tiny_config(digits_dir, seed=s, num_train_steps=8, checkpoint_every_steps=4) for s in (0, 1)
  ]
  dirs = [str(tmp_path / f"s{s}") for s in (0, 1)]
  first = seeds.train_seeds(configs, dirs)
  # Both lose their last checkpoint and result (a crash at step 6): they resume together from
  # step 4 and end where they ended.
  for d in dirs:
    os.remove(os.path.join(d, wd.RESULT))
    _remove_checkpoint(d, "8")
  again = seeds.train_seeds(configs, dirs)
  for a, b in zip(first, again):
    assert b["eval_loss"] == pytest.approx(a["eval_loss"], abs=1e-6)
  # Checkpoints at different steps: not one program; each goes on alone (the sweep does that).
  for d in dirs:
    os.remove(os.path.join(d, wd.RESULT))
  _remove_checkpoint(dirs[0], "8")
  with pytest.raises(steps.SeedsApart, match=r"different steps \(seed 0: 4, seed 1: 8\)"):
    seeds.train_seeds(configs, dirs)
  outcomes = sweep.run_unit([c.to_dict() for c in configs], dirs, [False, False])
  for a, b in zip(first, outcomes):
    assert b["eval_loss"] == pytest.approx(a["eval_loss"], abs=1e-4)
    assert b["seeds_together"] is None  # finished alone


def _remove_checkpoint(workdir, step):
  import shutil
  shutil.rmtree(os.path.join(workdir, wd.CHECKPOINTS, step))


def test_a_diverging_seed_sends_the_seeds_their_own_ways(tmp_path, digits_dir):
  bad = {"optimizer.learning_rate": 1e30, "optimizer.momentum": 0.0, "num_train_steps": 8}
  configs = [tiny_config(digits_dir, seed=s, **bad) for s in (0, 1)]
  dirs = [str(tmp_path / f"s{s}") for s in (0, 1)]
  with pytest.raises(steps.SeedsApart, match=r"seed 0 diverged \(loss nan\) at step \d+"):
    seeds.train_seeds(configs, dirs)
  # The sweep then trains each alone: each fails on its own, with its own error.json.
  outcomes = sweep.run_unit([c.to_dict() for c in configs], dirs, [False, False])
  for d, outcome in zip(dirs, outcomes):
    assert outcome["error"].startswith("TrainingDiverged: loss became nan")
    assert wd.read_json(os.path.join(d, wd.ERROR))["error"] == outcome["error"]


def test_only_seeds_of_one_config_train_together(tmp_path, digits_dir):
  a = tiny_config(digits_dir, seed=0)
  with pytest.raises(
      ConfigError, match=r"differ in their seed.*seed 1 also differs in "
      r"optimizer.learning_rate: 0.05 there, 0.1 now"):
    seeds.train_seeds([a, tiny_config(digits_dir, seed=1, **{"optimizer.learning_rate": 0.1})],
                      [str(tmp_path / "a"), str(tmp_path / "b")])
  with pytest.raises(ConfigError, match=r"each run needs its own seed and workdir"):
    seeds.train_seeds([a, a], [str(tmp_path / "a"), str(tmp_path / "b")])
  assert not os.listdir(tmp_path)


def test_sigterm_saves_every_seed_at_the_same_step(tmp_path, digits_dir):
  """A preempted group: each seed's checkpoint of the step they are at is saved, so that the
  rerun resumes them together."""
  dirs = [str(tmp_path / f"s{s}") for s in (0, 1)]
  with _sigterm_after_a_checkpoint_in(dirs[1]):
    with pytest.raises(
        loop.Interrupted, match=r"interrupted \(SIGTERM\) at step (\d+) of 4000; "
        r"each seed's checkpoint at step \1 is saved"):
      seeds.train_seeds([tiny_config(digits_dir, seed=s, num_train_steps=4000) for s in (0, 1)],
                        dirs)
  steps = {saved_models.load(d).step for d in dirs}
  assert len(steps) == 1 and steps.pop() < 4000


def test_precise_batch_norm_gives_the_statistics_of_the_batches_together():
  """Over equal batches, the mean of batch means and (law of total variance) the mean of batch
  variances plus the variance of the means are the statistics of all the data at once."""

  class Net(nnx.Module):

    def __init__(self):
      self.norm = nnx.BatchNorm(3, momentum=0.99, rngs=nnx.Rngs(0))

    def __call__(self, x):
      return self.norm(x)

  net = Net()
  model_def, state = nnx.split(net)
  rng = np.random.default_rng(0)
  batches = [{"image": rng.normal(loc=k, scale=1 + k, size=(4, 5, 5, 3)).astype(np.float32)}
             for k in range(3)]
  stats_fn = jax.jit(functools.partial(steps.batch_norm_stats, model_def, jnp.float32))
  set_fn = jax.jit(functools.partial(steps.set_batch_norm_stats, model_def))
  new = nnx.merge(model_def, steps.precise_batch_norm(stats_fn, set_fn, state, batches))
  data = np.concatenate([b["image"] for b in batches]).astype(np.float64).reshape(-1, 3)
  np.testing.assert_allclose(new.norm.mean[...], data.mean(0), rtol=1e-5)
  np.testing.assert_allclose(new.norm.var[...], data.var(0), rtol=1e-5)
  assert not np.allclose(net.norm.var[...], data.var(0))  # the module itself is untouched


def test_a_short_run_evaluates_with_the_statistics_of_its_training_data(tmp_path, digits_dir):
  """40 steps leave momentum-0.99 running statistics 67% at their initial values; the run's
  evaluation and its final checkpoint use statistics recomputed over training batches
  (`bn_stats_batches`), so a reload evaluates as the run did. With the old running averages
  (`bn_stats_batches=0`) the same run evaluates worse (measured: 46.7% against 34.7%; the
  default config's 100 steps of inception_small: 98.4% against 10.0%, chance)."""
  kwargs = dict(num_train_steps=40, **{"model_kwargs.width": 1.0})  # batch norm momentum 0.99
  precise = loop.train_and_evaluate(tiny_config(digits_dir, **kwargs), str(tmp_path / "a"))
  averaged = loop.train_and_evaluate(tiny_config(digits_dir, bn_stats_batches=0, **kwargs),
                                     str(tmp_path / "b"))
  assert precise["warning"] is None
  assert precise["eval_accuracy"] > averaged["eval_accuracy"] + 0.05, (precise, averaged)
  model = saved_models.load(str(tmp_path / "a")).model
  norm = layers.batch_norms(model)[0]
  assert float(jnp.abs(norm.mean[...]).max()) > 0.1  # not the initial zeros, nor a third


def test_generalization_warning():
  assert loop.generalization_warning(0.10, 1.0, 10).startswith("test accuracy 10.0% is near "
                                                               "chance (10.0% with 10 classes)")
  assert loop.generalization_warning(0.95, 1.0, 10) is None  # learned
  assert loop.generalization_warning(0.10, 0.12, 10) is None  # learned nothing: no mystery
  assert loop.generalization_warning(0.10, None, 10) is None


def test_a_batch_of_one_trains(tmp_path, digits_dir):
  """--config.batch_size=1 was a ShardingTypeError from inside JAX (the loss's gather on an
  explicitly sharded batch of one); 2 and 3 worked."""
  result = loop.train_and_evaluate(
      tiny_config(digits_dir, batch_size=1, eval_batch_size=1, num_train_steps=3), str(tmp_path))
  assert result["train_steps"] == 3 and np.isfinite(result["eval_loss"])


def test_a_test_split_smaller_than_an_eval_batch_is_scored_whole(tmp_path, digits_dir):
  """It was refused ("batch_size=32 is larger than the test[:5] split"): evaluation pads."""
  result = loop.train_and_evaluate(
      tiny_config(digits_dir, eval_split="test[:5]", num_train_steps=2), str(tmp_path))
  predictions = np.load(tmp_path / wd.EVALUATIONS / "eval-2.npz")
  assert len(predictions["label"]) == 5 and result["eval_accuracy"] * 5 == round(
      result["eval_accuracy"] * 5)


def test_cross_entropy_equals_optax_integer_labels():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(5, 7)) * 10, jnp.float32)
  labels = jnp.asarray([0, 6, 3, 3, 1])
  # Another formula (log-softmax, then the one-hot product) for the same function: equal to
  # within rounding (a unit in the last place was seen).
  assert_matches(steps.cross_entropy(logits, labels),
                 optax.softmax_cross_entropy_with_integer_labels, logits, labels)


@pytest.mark.parametrize("mean, std, channels", [(0.5, 0.5, 1), (0.2860, 0.3530, 1),
                                                 ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 3)])
def test_the_device_normalises_uint8_batches_as_the_host_does(mean, std, channels):
  """The training loop's batches stay uint8 (`Preprocess(normalise=False)`) and the steps look
  their pixels up (`steps.images`): bit for bit the host's normalisation, for every value in
  every channel, jitted on a batch sharded over an explicit mesh as the loop shards it, and on
  stacked seeds."""
  host = pipeline.Preprocess(16, channels, mean=mean, std=std, crop_padding=2, flip=True)
  raw = dataclasses.replace(host, normalise=False)
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (16, 16, channels), dtype=np.uint8) for _ in range(4)]
  every = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), channels, axis=-1)
  look_up = functools.partial(steps.images, dtype=jnp.float32, pixels=raw.pixel_table())
  for draws in (None, host.draws(4, np.random.default_rng(1))):  # evaluated, trained
    batch = raw.apply([every] + images[1:], draws)
    expected = host.apply([every] + images[1:], draws)
    assert batch.dtype == np.uint8 and expected.dtype == np.float32
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
    sharded = jax.device_put(batch,
                             jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    np.testing.assert_array_equal(np.asarray(jax.jit(look_up)({"image": sharded})), expected)
    stacked = jax.jit(jax.vmap(look_up))({"image": np.stack([batch, batch[::-1]])})
    np.testing.assert_array_equal(np.asarray(stacked), np.stack([expected, expected[::-1]]))
  assert len(np.unique(raw.apply([every], None))) == 256
  with pytest.raises(ValueError, match="needs its normalisation"):
    steps.images({"image": batch}, jnp.float32)
  np.testing.assert_array_equal(steps.images({"image": expected}, jnp.float32), expected)


def test_unset_data_workers_are_none_for_a_training_split_in_memory(digits_dir, monkeypatch):
  """Batches from memory are made in the training process: workers would cost their start at
  every evaluation. A split read from disk takes the device's default (a 64-core CPU's: 8)."""
  monkeypatch.setattr(os, "cpu_count", lambda: 64)
  config = tiny_config(digits_dir, **{"data.workers": None})
  split = pipeline.config_splits(config, ("train",))["train"]
  assert split.images is not None and loop._workers(config, split) == 0
  assert loop._workers(config, dataclasses.replace(split, images=None, labels=None)) == 8
  assert loop._workers(tiny_config(digits_dir, **{"data.workers": 3}), split) == 3
