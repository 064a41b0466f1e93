"""A training run's workdir (docs/workdirs.md): made ready for a run or found finished
(`prepare_workdir`), resumed from its newest readable checkpoint (`resume`), its metrics written
as they come (`MetricWriter`) and its result written last (`write_result`). The caller holds the
workdir's lock (`workdir.lock`)."""

from __future__ import annotations

import dataclasses
import math
import os
import sys

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from bottleneck.train import checkpoints, records
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError

# What a run writes in its workdir; `--restart` and a replaced config set all of it aside.
RUN_FILES = (wd.CONFIG, wd.METRICS, wd.RESULT, wd.CHECKPOINTS, wd.TENSORBOARD, wd.ERROR,
             wd.EVALUATIONS)


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a training program: its config, the record of it and its workdir."""
  config: ml_collections.ConfigDict
  record: dict
  workdir: str


def read_result(workdir: str) -> dict:
  """A finished run's result.json; CorruptFile (naming it) if it is cut short, incomplete or
  holds an impossible value."""
  return wd.read_result(os.path.join(workdir, wd.RESULT))


def prepare_workdir(workdir: str, record: dict, *, restart: bool = False) -> dict | None:
  """Makes `workdir` ready for the run `record` describes (the caller holds its lock); returns
  its result if that run is finished.

  `config.json` guards a run's checkpoints: a workdir whose run has checkpoints and another
  config is refused (with `restart`, that run is set aside). A workdir with no checkpoint
  accepts the new config, saying what changed. An unreadable result is set aside and
  recomputed from the final checkpoint. Nothing is deleted: see `workdir.set_aside`.
  """
  config_path = os.path.join(workdir, wd.CONFIG)
  if os.path.exists(os.path.join(workdir, wd.IMPORTED)):
    raise ConfigError(f"workdir {workdir} holds imported weights ({wd.IMPORTED}); training "
                      "does not write there. Use another --workdir.")
  if restart:
    moved = wd.set_aside(workdir, RUN_FILES, "set aside by --restart")
    if moved:
      logging.warning("--restart: the previous run in %s was moved to %s", workdir, moved)
    return None
  if os.path.exists(config_path):
    try:
      diff = records.differences(wd.read_json(config_path, mapping=True), record)
    except wd.CorruptFile as e:
      diff = [str(e)]
    if diff:
      if wd.has_checkpoints(workdir):
        raise ConfigError(
            f"workdir {workdir} holds a run with a different config ({'; '.join(diff[:5])}). "
            "Rerun with --restart to set that run aside (moved under .set_aside/, nothing is "
            "deleted), or use another --workdir.")
      moved = wd.set_aside(
          workdir, RUN_FILES, "replaced by a new config; the run had no "
          "checkpoint. Changed: " + "; ".join(diff))
      logging.warning(
          "%s had no checkpoint of its run; it takes the new config (%s). The "
          "old files are in %s", workdir, "; ".join(diff[:5]), moved)
      return None
  if os.path.exists(os.path.join(workdir, wd.RESULT)):
    try:
      return read_result(workdir)
    except wd.CorruptFile as e:
      moved = wd.set_aside(workdir, [wd.RESULT], str(e))
      logging.warning("%s Moved to %s; it is recomputed from the final checkpoint.", e, moved)
  return None


def agree(workdir: str, decide) -> dict | None:
  """`decide()` (prepare the workdir) in process 0, and its outcome in every process: the
  finished run's result, or None to train. With several processes the others wait for it (the
  workdir is then set aside or accepted before anyone reads its checkpoints), and a refusal in
  process 0 is one error in each, not a wait for a process that has stopped."""
  if jax.process_count() == 1:
    return decide()
  outcome, error = None, None
  if jax.process_index() == 0:
    try:
      outcome = decide()
    except Exception as e:  # noqa: BLE001  # said to the others, then raised here as it was
      error = e
  code = 2 if error else int(outcome is not None)
  code = int(multihost_utils.broadcast_one_to_all(np.int32(code)))
  multihost_utils.sync_global_devices("workdir prepared")
  if error is not None:
    raise error
  if code == 2:
    raise ConfigError(f"process 0 refused the workdir {workdir}; its error says why.")
  return outcome if outcome is not None or code == 0 else read_result(workdir)


def say_finished(workdir: str) -> None:
  logging.info("%s is finished: its result is in %s", workdir, os.path.join(workdir, wd.RESULT))
  print(f"already finished: result in {os.path.join(workdir, wd.RESULT)}", file=sys.stderr)


def resume(workdir: str, manager, states: dict, owner: bool) -> tuple[int, dict, float | None]:
  """(step, states, training time before it) of the newest readable checkpoint, or (0,
  `states`, 0.0) for a fresh run. Unreadable checkpoints are set aside so that their steps can
  be saved again; metrics rows logged after the checkpoint are dropped."""
  step, states = checkpoints.restore_latest(manager, states,
                                            set_aside_in=workdir if owner else None)
  step = step or 0  # none readable: a fresh run
  metrics_path = os.path.join(workdir, wd.METRICS)
  rows = [r for r in wd.read_metrics(metrics_path) if r["step"] <= step]
  if owner:
    wd.truncate_jsonl(metrics_path, rows)
  prior_time = training_time_before(rows, step)
  if step:
    logging.info("resuming from the checkpoint at step %d", step)
    if prior_time is None:
      logging.warning(
          "no metrics row at step %d: the training time before it is unknown, so "
          "train_time_s and examples_per_s are recorded as null", step)
  return step, states, prior_time


def training_time_before(rows: list[dict], step: int) -> float | None:
  """Training time of a run up to `step`, from the train row logged with that step's
  checkpoint (every checkpoint step logs one): 0 at step 0, None (unknown) without that row."""
  if not step:
    return 0.0
  at = [r for r in rows if r["split"] == "train" and r["step"] == step]
  seconds = at[-1].get("train_time_s") if at else None
  ok = type(seconds) in (int, float) and math.isfinite(seconds) and seconds >= 0
  return float(seconds) if ok else None


class MetricWriter:
  """Rows to `metrics.jsonl` (flushed each) and their numbers to TensorBoard; only the process
  that owns the workdir writes, the others' calls do nothing."""

  def __init__(self, workdir: str, owner: bool):
    self._jsonl = self._tb = None
    if owner:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, wd.TENSORBOARD))
      self._jsonl = wd.JsonlWriter(os.path.join(workdir, wd.METRICS))

  def write(self, row: dict) -> None:
    if self._jsonl is None:
      return
    self._jsonl.write(row)
    for k, v in row.items():
      if k not in ("step", "split") and isinstance(v, (int, float)):
        self._tb.add_scalar(f"{row['split']}/{k}", v, row["step"])
    self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
      self._tb.close()


def write_result(workdir: str, final: dict, result: dict) -> None:
  """The final evaluation's predictions, then result.json: a result marks the run finished."""
  wd.write_predictions(os.path.join(workdir, wd.PREDICTIONS), final["predicted"], final["label"])
  wd.write_json(os.path.join(workdir, wd.RESULT), result)
