"""Checkpoints: any directory name works, unreadable steps are set aside so later saves happen."""

import gc
import os
import sys
import time
import types

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bottleneck.train import checkpoints
from bottleneck.util import workdir as wd
from tests import ODD


def _state(value: float):
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  model.kernel[...] = jnp.full((2, 3), value)
  return nnx.state(model)


def _corrupt(directory):
  for root, _, files in os.walk(directory):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"not a checkpoint")


def _save_steps(workdir, steps, keep=None):
  mgr = checkpoints.manager(workdir, keep=keep)
  for step in steps:
    checkpoints.save(mgr, step, {"m": _state(float(step))})
  mgr.close()


def test_save_and_restore_under_a_name_with_glob_characters(tmp_path):
  work = str(tmp_path / ODD)
  _save_steps(work, (1, 2))
  step, restored = checkpoints.restore_latest(checkpoints.manager(work), {"m": _state(0.0)})
  assert step == 2
  np.testing.assert_array_equal(restored["m"]["kernel"][...], np.full((2, 3), 2.0))


def test_unreadable_steps_are_set_aside_and_can_be_saved_again(tmp_path):
  work = str(tmp_path / ODD)
  _save_steps(work, (1, 2))
  _corrupt(os.path.join(work, wd.CHECKPOINTS, "2"))
  # A reader reports the unreadable step and loads the one before, moving nothing.
  step, _ = checkpoints.restore_latest(checkpoints.manager(work, read_only=True),
                                       {"m": _state(0.0)})
  assert step == 1 and os.path.isdir(os.path.join(work, wd.CHECKPOINTS, "2"))
  # The workdir's owner moves it aside, then saves that step anew (orbax would skip a save
  # at or below a step it still lists).
  _corrupt(os.path.join(work, wd.CHECKPOINTS, "1"))
  mgr = checkpoints.manager(work)
  step, _ = checkpoints.restore_latest(mgr, {"m": _state(0.0)}, set_aside_in=work)
  assert step is None and mgr.all_steps() == []
  aside = os.listdir(os.path.join(work, wd.SET_ASIDE))
  assert len(aside) == 2
  assert {tuple(os.listdir(os.path.join(work, wd.SET_ASIDE, a, wd.CHECKPOINTS))) for a in aside
         } == {("1",), ("2",)}
  checkpoints.save(mgr, 2, {"m": _state(5.0)})
  mgr.close()
  step, restored = checkpoints.restore_latest(checkpoints.manager(work), {"m": _state(0.0)})
  assert step == 2 and float(restored["m"]["kernel"][...][0, 0]) == 5.0


def test_a_save_cut_short_by_a_kill_is_cleaned_up_by_the_next_writer(tmp_path):
  work = str(tmp_path / ODD)
  _save_steps(work, (1,))
  cut = os.path.join(work, wd.CHECKPOINTS, "5.orbax-checkpoint-tmp")
  os.makedirs(os.path.join(cut, "default.orbax-checkpoint-tmp"))  # a kill mid-save leaves this
  reader = checkpoints.manager(work, read_only=True)
  assert reader.all_steps() == [1] and os.path.exists(cut)  # a reader touches nothing
  writer = checkpoints.manager(work)  # cleans up in the background, finished before any save
  checkpoints.save(writer, 2, {"m": _state(2.0)})
  writer.close()
  assert sorted(os.listdir(os.path.join(work, wd.CHECKPOINTS))) == ["1", "2"]


def test_a_failed_restore_leaves_no_event_loop_tracebacks(tmp_path, monkeypatch):
  """When one array of a checkpoint is unreadable, orbax ends the restore while tensorstore
  still reads the others; each late read reported "RuntimeError: Event loop is closed" through
  Python's unraisable hook (17-28 tracebacks under a corrupt model's one-line error, 824 in a
  resumed training). They are dropped; anything else still reaches the hook."""
  work = str(tmp_path / "w")
  mgr = checkpoints.manager(work)
  state = nnx.state(nnx.Sequential(*[nnx.Linear(64, 64, rngs=nnx.Rngs(i)) for i in range(8)]))
  checkpoints.save(mgr, 1, {"m": state})
  mgr.close()
  for root, _, files in os.walk(os.path.join(work, wd.CHECKPOINTS)):
    for f in files:
      if os.sep + "d" + os.sep in os.path.join(root, f):  # the arrays' data, not the metadata
        open(os.path.join(root, f), "wb").close()
  reported = []
  monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(repr(u.exc_value)))
  step, _ = checkpoints.restore_latest(checkpoints.manager(work, read_only=True), {"m": state})
  assert step is None
  time.sleep(1.0)  # the late reads complete
  gc.collect()
  assert not [r for r in reported if "Event loop is closed" in r], reported[:3]
  sys.unraisablehook(types.SimpleNamespace(exc_value=ValueError("other")))
  assert reported == ["ValueError('other')"]
