"""Checkpoints of nnx state with orbax: save, restore the newest readable one, set aside the
unreadable ones.

A training workdir keeps `checkpoints/<step>/`. Restoring walks the steps from the newest: an
unreadable one (cut short, corrupt) is reported and, when the caller owns the workdir, moved to
`.set_aside/` (`bottleneck.util.workdir.set_aside`), not deleted. Orbax never saves a step at or
below its newest step, readable or not, so a corrupt step left in place would silently block
every later save up to it.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from bottleneck.util import compat, workdir as wd


def _is_key(x) -> bool:
  return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_storable(state: nnx.State):
  """Pure nested dicts with PRNG keys as their raw data (orbax stores plain arrays)."""
  return jax.tree.map(lambda x: jax.random.key_data(x)
                      if _is_key(x) else x, nnx.to_pure_dict(state))


def from_storable(template: nnx.State, stored) -> nnx.State:
  pure = nnx.to_pure_dict(template)
  pure = jax.tree.map(
      lambda t, s: jax.random.wrap_key_data(s, impl=jax.random.key_impl(t))
      if _is_key(t) else s, pure, stored)
  state = jax.tree.map(lambda x: x, template)  # a copy to fill
  nnx.replace_by_pure_dict(state, pure)
  return state


def manager(workdir: str, *, keep: int | None = None,
            read_only: bool = False) -> ocp.CheckpointManager | None:
  """The checkpoint manager of `workdir/checkpoints`; None for a reader when it does not exist.

  A writer (the run that holds the workdir's lock) also removes orbax's temporary directories
  of saves that a kill cut short. Orbax finds its files under any directory name
  (`compat.escape_epath_glob`)."""
  compat.escape_epath_glob()
  directory = os.path.abspath(os.path.join(workdir, wd.CHECKPOINTS))
  if read_only:
    if not os.path.isdir(directory):
      return None
    return ocp.CheckpointManager(directory,
                                 options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                      cleanup_tmp_directories=True))


def save(mgr: ocp.CheckpointManager, step: int, states: dict[str, nnx.State]) -> None:
  """Saves `step` (asynchronously with one process; after the save before it has finished).

  `force`: orbax's default decision policy skips a save, silently, while the one before is
  still being written; a Ctrl-C right after a checkpoint then lost the step it said it saved.
  """
  if not mgr.save(step, args=ocp.args.StandardSave({k: to_storable(v) for k, v in states.items()}),
                  force=True):
    raise RuntimeError(f"orbax did not save the checkpoint of step {step} in {mgr.directory}.")
  if jax.process_count() > 1:
    # With several processes the save's background thread synchronises them; a collective of
    # the training's own meanwhile would pair with it in another process.
    mgr.wait_until_finished()


def _is_abandoned_read(unraisable) -> bool:
  """A read of a failed restore completing after orbax closed its event loop: when one array of
  a checkpoint is unreadable, orbax ends the restore while tensorstore still reads the others,
  and each of their callbacks finds the loop closed. Harmless, and hundreds of tracebacks on a
  larger model, which buried the one line that says what is wrong."""
  return (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == "Event loop is closed")


def _quiet_abandoned_reads() -> None:
  """Drops `_is_abandoned_read` reports (Python's unraisable-exception hook); others pass."""
  previous = sys.unraisablehook
  if getattr(previous, "quiets_abandoned_reads", False):
    return

  def hook(unraisable):
    if not _is_abandoned_read(unraisable):
      previous(unraisable)

  hook.quiets_abandoned_reads = True
  sys.unraisablehook = hook


def restore_latest(mgr: ocp.CheckpointManager | None, states: dict[str, nnx.State], *,
                   set_aside_in: str | None = None):
  """(step, states) from the newest readable checkpoint, or (None, states) if there is none
  (step 0 is a step: imported weights are saved there, `bottleneck.train.saved_models`).

  An unreadable checkpoint is reported and the one before it is tried; with `set_aside_in`
  (the workdir, for its owner) the unreadable step is moved to its `.set_aside/` first, so
  that later saves at or below that step happen.
  """
  if mgr is None:
    return None, states
  _quiet_abandoned_reads()
  template = {k: to_storable(v) for k, v in states.items()}
  steps = sorted(mgr.all_steps(), reverse=True)
  for step in steps:
    try:
      stored = mgr.restore(step, args=ocp.args.StandardRestore(template))
    except Exception as e:  # orbax raises many kinds
      why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
      where = ""
      if set_aside_in is not None:
        moved = wd.set_aside(
            set_aside_in, [os.path.join(wd.CHECKPOINTS, str(step))],
            f"checkpoint at step {step} was unreadable ({why}); moved here so "
            "that training can save that step again.")
        mgr.reload()
        where = f"; moved to {moved}"
      logging.warning(
          "checkpoint at step %d in %s is unreadable (%s)%s; trying the one "
          "before it", step, mgr.directory, why, where)
      continue
    return step, {k: from_storable(states[k], stored[k]) for k in states}
  if steps:
    logging.warning("no readable checkpoint in %s", mgr.directory)
  return None, states
