"""Training and evaluation: `train_and_evaluate(config, workdir)`.

`train` is the program, top to bottom: set-up (data, models, the config recorded, checkpoints
resumed, the steps compiled), the loop (logged, evaluated and checkpointed as the config says),
the final evaluation and the results. The steps it jits are in `steps.py`, the workdir's files
in `rundir.py`, seeds trained as one program in `seeds.py`. What a workdir holds, how a run
resumes and how Ctrl-C or SIGTERM stops it: docs/workdirs.md and docs/training.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from bottleneck.data import loader, pipeline
from bottleneck.measure import complexity
from bottleneck.nn import layers
from bottleneck.train import builders, checkpoints, run_config, rundir, steps
from bottleneck.train.rundir import Member
from bottleneck.train.steps import SeedsApart, Together
from bottleneck.util import env, signals, workdir as wd
from bottleneck.util.errors import TrainingDiverged

DTYPES = env.DTYPES
Interrupted = signals.Interrupted  # raised after this step's checkpoint was saved

# --- progress --------------------------------------------------------------------------------


class Progress:
  """Step, loss, steps/s and ETA: one updating line on a terminal, log lines otherwise (and
  always log lines, prefixed with `label`, when several runs share one terminal)."""

  def __init__(self, total_steps: int, start_step: int, every: int, label: str | None = None):
    self.total, self.every = total_steps, max(1, every)
    self.label = f"[{label}] " if label else ""
    self.tty = sys.stderr.isatty() and not label
    self.t0, self.s0 = time.time(), start_step
    self._last_draw = 0.0

  def update(self, step: int, loss: float | None = None, force: bool = False) -> None:
    now = time.time()
    rate = (step - self.s0) / max(now - self.t0, 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    text = (f"{self.label}step {step}/{self.total}" +
            (f"  loss {loss:.4f}" if loss is not None else "")
            + f"  {rate:.2f} steps/s  ETA {eta:.0f} s")
    if self.tty:
      if force or now - self._last_draw > 0.2:
        sys.stderr.write("\r" + text.ljust(79))
        sys.stderr.flush()
        self._last_draw = now
    elif force or step % self.every == 0:
      if self.label:  # a worker of a parallel sweep: shown whatever its logging level
        print(text, file=sys.stderr, flush=True)
      else:
        logging.info("%s", text)

  def close(self) -> None:
    if self.tty:
      sys.stderr.write("\n")


# --- when to log, evaluate, checkpoint -------------------------------------------------------


def time_to_log(step: int, config) -> bool:
  return step % config.log_every_steps == 0


def time_to_checkpoint(step: int, config, total_steps: int, stop: str | None) -> bool:
  """Every `checkpoint_every_steps`, at the last step, and at the step a signal stopped."""
  return step % config.checkpoint_every_steps == 0 or step == total_steps or bool(stop)


def eval_every(config, steps_per_epoch: int) -> int:
  """Steps between evaluations along the run: `eval_every_steps`, or `eval_every_epochs` in
  steps (at least 1); 0 for none before the final one."""
  if config.eval_every_steps:
    return config.eval_every_steps
  epochs = config.get("eval_every_epochs") or 0
  return max(1, round(epochs * steps_per_epoch)) if epochs else 0


def time_to_evaluate(step: int, every: int, total_steps: int, stop: str | None) -> bool:
  """Every `every` steps before the last step (the final evaluation follows it), unless a
  signal is stopping the run."""
  return bool(every and step % every == 0 and step != total_steps and not stop)


# --- the run ---------------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, restart: bool = False,
                       label: str | None = None) -> dict:
  """Trains `config.model` on `config.dataset`, evaluates it, returns the result.json dict.

  The config is checked whole before anything is read or written; the workdir is locked for
  the run (one process at a time). `restart` sets a previous run in the workdir aside instead
  of resuming it. `label` prefixes the progress lines (runs sharing a terminal)."""
  run_config.validate(config)
  record = run_config.record(config)
  owner = jax.process_index() == 0  # writes the workdir's files and holds its lock
  with wd.lock(workdir) if owner else contextlib.nullcontext():
    finished = rundir.agree(workdir,
                            lambda: rundir.prepare_workdir(workdir, record, restart=restart))
    if finished is not None:
      rundir.say_finished(workdir)
      return finished
    return train([Member(config, record, workdir)], owner, label)[0]


def train(members: list[Member], owner: bool, label: str | None) -> list[dict]:
  """Trains the runs of `members` (one, or seeds of one config: `Together`) and writes their
  workdirs, whose locks are the caller's; returns their results. `owner`: this process writes
  the files (the first of several hosts). Reads top to bottom: set-up, loop, final
  evaluation, results."""
  # --- Set-up: data, models, schedule and optimizers (the members differ in their seed only).
  config = members[0].config
  together = Together(len(members))
  data_sharding, replicated = steps.data_parallel(config, stacked=together.n > 1)
  validation = config.get("validation_split")  # held out of training: choices along the run
  splits = pipeline.config_splits(config, (config.train_split, config.eval_split) +
                                  ((validation,) if validation else ()))
  pipeline.check_held_out(splits, validation, (config.train_split, config.eval_split))
  pipeline.log_split_sizes(splits)
  train_split = splits[config.train_split]
  pipeline.check_batch_size(train_split, config.batch_size)  # evaluation pads its last batch
  num_classes = train_split.num_classes
  resolved = run_config.resolve(config, num_classes)  # the model's arguments, width matched
  models = [builders.model_from(resolved, m.config.seed) for m in members]
  cost = complexity.analyze_model(models[0])
  _log_model(config, resolved.match, cost, together.n)
  # Batches of uint8 images, normalised on the device by the steps (`steps.images`): a quarter
  # of the bytes to move from the data workers and to the device.
  preprocess = pipeline.Preprocess.from_config(config, models[0].in_channels, normalise=False)
  pixels = preprocess.pixel_table()
  part = (jax.process_index(), jax.process_count())  # each process reads its part of a batch
  train_batches = [
      pipeline.Batches(train_split, config.batch_size, preprocess, m.config.seed, part)
      for m in members
  ]
  workers = _workers(config, train_split)  # data workers: the batches made ahead (`loader`)
  # What each evaluation scores: the test split ("eval"), and the validation split if any.
  eval_sets = {
      name: loader.Ahead(
          pipeline.Batches(splits[s], config.eval_batch_size, preprocess, config.seed, part),
          workers) for name, s in (("eval", config.eval_split), ("validation", validation)) if s
  }
  steps_per_epoch = train_batches[0].steps_per_epoch
  total_steps = config.num_train_steps if config.get("num_train_steps") else max(
      1, round(config.num_epochs * steps_per_epoch))
  evaluation_every = eval_every(config, steps_per_epoch)
  schedule = builders.make_schedule(config, steps_per_epoch, total_steps)
  optimizers = [
      nnx.Optimizer(m, builders.make_optimizer(config, schedule), wrt=nnx.Param) for m in models
  ]
  # Only a config that got this far is recorded: a run refused for bad input leaves no
  # config.json behind to block the corrected rerun in the same workdir.
  if owner:
    for m in members:
      wd.write_json(os.path.join(m.workdir, wd.CONFIG), m.record)
  model_def, eval_def, opt_def = _graph_defs(models[0], optimizers[0])

  with contextlib.ExitStack() as closers:  # what the set-up opens, closed however it ends
    for eval_set in eval_sets.values():
      closers.callback(eval_set.close)  # their workers
    # --- Resume: each run's newest readable checkpoint, or its fresh state.
    managers = [checkpoints.manager(m.workdir, keep=config.keep_checkpoints) for m in members]
    for manager in managers:
      closers.callback(manager.close)  # waits for an in-flight save, whatever ended the run
    resumed = [
        rundir.resume(m.workdir, manager, {"model": nnx.state(mo), "optimizer": nnx.state(o)},
                      owner) for m, manager, mo, o in zip(members, managers, models, optimizers)
    ]
    start_step = _same_step(resumed, members)
    prior_times = [r[2] for r in resumed]
    state = steps.replicate(together.stack([(r[1]["model"], r[1]["optimizer"]) for r in resumed]),
                            replicated)

    # --- The batches after the first, made ahead by the data workers (`loader.feed`) while
    # the first compiles the step.
    make_batch = loader.StepBatches(train_batches)
    feed = loader.feed(make_batch, start_step + 1, max(start_step + 1, total_steps), workers)
    closers.callback(feed.close)

    # --- Compile: the train step (now, timed), the evaluation, batch norm's statistics.
    dtype = DTYPES[config.dtype]
    # Which library computes the convolutions (bottleneck.nn.paths).
    options = resolved.paths.compiler_options("config")
    t = time.time()
    first = steps.to_device(make_batch(start_step), data_sharding)
    train_step = jax.jit(
        together.map(functools.partial(steps.train_step, model_def, opt_def, dtype, pixels=pixels)),
        donate_argnums=0, out_shardings=(replicated, replicated),
        compiler_options=options).lower(state, first).compile()
    compile_time = time.time() - t
    logging.info("train step compiled in %.1f s", compile_time)
    eval_step = jax.jit(
        together.map(functools.partial(steps.eval_step, eval_def, dtype, pixels=pixels),
                     in_axes=(0, None)), compiler_options=options)
    evaluate = functools.partial(steps.evaluate, eval_step,
                                 sharding=NamedSharding(data_sharding.mesh, P("data")),
                                 n=together.n)  # one eval batch for every run
    # Batch norm's evaluation statistics, recomputed over training batches before every
    # evaluation and before the final checkpoint (`steps.precise_batch_norm`).
    bn_batches = config.get("bn_stats_batches", 0) if layers.batch_norms(models[0]) else 0
    bn_steps = _batch_norm_steps(
        together, functools.partial(steps.batch_norm_stats, model_def, dtype, pixels=pixels),
        model_def, replicated, options, bn_batches)
    writers = [rundir.MetricWriter(m.workdir, owner) for m in members]
    for writer in writers:
      closers.callback(writer.close)

    # --- The loop. Ctrl-C or SIGTERM at any point from here, the last step and the final
    # evaluation included, ends the run with its checkpoint saved and raises Interrupted (a
    # sweep stops there too); a signal after the last step's read lets the run finish and write
    # its result first.
    progress = Progress(total_steps, start_step, config.log_every_steps, label)
    train_accuracy = [None] * together.n
    pending, window_t, train_time = [], time.time(), 0.0
    step, stop = start_step, None
    with signals.CtrlC("saving a checkpoint of this step, then stopping") as ctrl_c:
      with closers.pop_all():  # checkpoints and metrics closed before the results are written
        while step < total_steps:
          batch = first if step == start_step else steps.to_device(next(feed), data_sharding)
          state, metrics = train_step(state, batch)
          step += 1
          pending.append((step, metrics))
          # At most two steps in flight: the progress line shows steps computed, not queued,
          # and a Ctrl-C stops the run a step later, not after every step it had dispatched.
          if len(pending) >= 2:
            jax.block_until_ready(pending[-2][1]["loss"])
          # Read once, so that the step that stops is the step that is checkpointed: a signal
          # that lands later in this step is handled at the next one.
          stop = steps.agreed_signal(ctrl_c.pressed)
          checkpoint_now = time_to_checkpoint(step, config, total_steps, stop)
          evaluate_now = time_to_evaluate(step, evaluation_every, total_steps, stop)
          if not (time_to_log(step, config) or checkpoint_now or evaluate_now):
            progress.update(step)
            continue
          jax.block_until_ready(state)
          _first_nonfinite([(s, m["loss"]) for s, m in pending], together, members)
          # Wall time of training steps and data, not eval or saving; runs trained together
          # share it evenly.
          elapsed = (time.time() - window_t) / together.n
          train_time += elapsed
          last = steps.fetch(pending[-1][1])
          progress.update(step, float(np.mean(last["loss"])), force=True)
          train_accuracy = _log_train(writers, together, last, step, len(pending), elapsed,
                                      config.batch_size, schedule, prior_times, train_time)
          if evaluate_now or step == total_steps:
            state = _recalibrate(
                state, bn_steps,
                (steps.to_device(make_batch(s), data_sharding) for s in range(bn_batches)))
          if evaluate_now:
            _evaluations(evaluate, eval_sets, state[0], step, writers, members, owner,
                         _times(prior_times, train_time))
          if checkpoint_now:
            for i, manager in enumerate(managers):
              checkpoints.save(manager, step,
                               together.member({"model": state[0], "optimizer": state[1]}, i))
          pending, window_t = [], time.time()
          if stop:
            break

        # --- The final evaluation, after the saves finished; Interrupted if a signal stopped
        # the loop early.
        for manager in managers:
          manager.wait_until_finished()
        progress.close()
        if stop and step < total_steps:
          where = (f"the checkpoint at step {step} is saved"
                   if together.n == 1 else f"each seed's checkpoint at step {step} is saved")
          raise Interrupted(f"interrupted ({stop}) at step {step} of {total_steps}; "
                            f"{where}. Rerun the same command to resume.")
        finals = _evaluations(evaluate, eval_sets, state[0], step, writers, members, owner,
                              _times(prior_times, train_time))

      # --- The results: each run's result.json, after its predictions.
      results = []
      for i, (m, final, prior) in enumerate(zip(members, finals, prior_times)):
        result = run_result(m.config, m.record, cost, final, step,
                            None if prior is None else prior + train_time, compile_time, resolved,
                            [o.config.seed for o in members] if together.n > 1 else None)
        result["num_classes"] = num_classes
        result["warning"] = generalization_warning(final["accuracy"], train_accuracy[i],
                                                   num_classes)
        if result["warning"]:
          logging.warning("%s: %s", m.workdir, result["warning"])
        if owner:
          rundir.write_result(m.workdir, final, result)
        logging.info("eval accuracy %.4f, loss %.4f after %d steps; result in %s",
                     final["accuracy"], final["loss"], step, os.path.join(m.workdir, wd.RESULT))
        results.append(result)
  if ctrl_c.pressed:  # after the last step's read: the run is finished, the work stops here
    raise Interrupted(f"interrupted ({ctrl_c.pressed}) at the end of the run: all "
                      f"{step} steps are trained and the result is saved in "
                      f"{', '.join(os.path.join(m.workdir, wd.RESULT) for m in members)}. "
                      "Rerun the same command to go on with what remains.")
  return results


# --- the set-up's and the loop's helpers -----------------------------------------------------


def _log_model(config, match: dict | None, cost: dict, n: int) -> None:
  if match:
    logging.info(
        "width %.4f: %s %s against a budget of %.4g%s", match["width"], f"{match['cost']:,}",
        match["metric"], match["budget"], "" if match["replaced_width"] is None else
        f" (it replaces the configured model_kwargs.width={match['replaced_width']})")
  logging.info("model %s (reduce=%s): %s params, %.4g GMACs, %s XLA GFLOPs per image%s",
               config.model, config.reduce, f"{cost['total']['params']:,}",
               cost["total"]["macs"] / 1e9, cost["total"]["flops_xla"]
               and f"{cost['total']['flops_xla'] / 1e9:.4g}",
               f"; {n} seeds trained together" if n > 1 else "")


def _graph_defs(model, optimizer) -> tuple:
  """The graph definitions of the model in training mode, in evaluation mode, and of the
  optimizer (the model is left in training mode)."""
  model.train()
  model_def, _ = nnx.split(model)
  model.eval()
  eval_def, _ = nnx.split(model)
  model.train()
  opt_def, _ = nnx.split(optimizer)
  return model_def, eval_def, opt_def


def _same_step(resumed: list[tuple], members: list[Member]) -> int:
  """The step the runs resume from; SeedsApart if their checkpoints are at different steps."""
  start = resumed[0][0]
  if any(r[0] != start for r in resumed):
    at = ", ".join(f"seed {m.config.seed}: {r[0]}" for m, r in zip(members, resumed))
    raise SeedsApart(f"the seeds' checkpoints are at different steps ({at}); each resumes alone")
  return start


def _workers(config, train_split: pipeline.Split) -> int:
  """`data.workers`, or when unset the default for this device, its cores and where the
  training split is (logged)."""
  if config.data.get("workers") is not None:
    return config.data.workers
  in_memory = train_split.images is not None
  workers = loader.default_workers(jax.default_backend(), in_memory=in_memory)
  logging.info("data.workers unset: %d data worker%s (%d cores, %s%s)", workers,
               "" if workers == 1 else "s",
               os.cpu_count() or 1, jax.default_backend(),
               ", the training split in memory" if in_memory else "")
  return workers


def _batch_norm_steps(together: Together, batch_stats, model_def, replicated, options,
                      bn_batches: int) -> tuple | None:
  """(statistics of a batch, set the statistics), jitted; None without batch-norm recalibration.
  `batch_stats`: `steps.batch_norm_stats` bound to all but the state and the batch."""
  if not bn_batches:
    return None
  stats = jax.jit(together.map(batch_stats), compiler_options=options)
  set_stats = jax.jit(together.map(functools.partial(steps.set_batch_norm_stats, model_def)),
                      out_shardings=replicated)
  return stats, set_stats


def _recalibrate(state, bn_steps: tuple | None, batches):
  """`state` with batch norm's statistics those of the training `batches` (`bn_steps` None:
  unchanged, and the batches are not read)."""
  if bn_steps is None:
    return state
  return steps.precise_batch_norm(*bn_steps, state[0], batches), state[1]


def _first_nonfinite(losses: list[tuple[int, jax.Array]], together: Together,
                     members: list[Member]) -> None:
  for step, loss in losses:
    values = np.asarray(steps.fetch(loss), np.float64).reshape(together.n)
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if not bad:
      continue
    if together.n > 1:
      raise SeedsApart(f"seed {members[bad[0]].config.seed} diverged (loss {values[bad[0]]}) at "
                       f"step {step}; the seeds go on one at a time from their last checkpoints")
    raise TrainingDiverged(f"loss became {values[0]} at step {step}; no checkpoint was written "
                           "after it. Lower optimizer.learning_rate or check the data, and "
                           "rerun with --restart (the diverged run is set aside).")


def _times(prior_times: list, train_time: float) -> list[float | None]:
  """Each run's training time so far (None: unknown, its time before the resume was)."""
  return [None if prior is None else prior + train_time for prior in prior_times]


def _evaluations(evaluate, eval_sets: dict, model_state, step: int, writers, members: list[Member],
                 owner: bool, times: list) -> list[dict]:
  """Each split of `eval_sets` scored at `step`: each run's metrics row, with its training
  time so far, and its per-example predictions (`evaluations/<split>-<step>.npz`, written by
  the owner). Returns the test split's ("eval") rows."""
  tested = []
  for name, batches in eval_sets.items():
    rows = evaluate(model_state, batches=batches)
    for writer, member, row, seconds in zip(writers, members, rows, times):
      writer.write({
          "step": step, "split": name, **steps.scalars(row),
          **({} if seconds is None else {"train_time_s": seconds})
      })
      if owner:
        wd.write_predictions(os.path.join(member.workdir, wd.EVALUATIONS, f"{name}-{step}.npz"),
                             row["predicted"], row["label"])
    tested = rows if name == "eval" else tested
  return tested


def _log_train(writers, together: Together, last: dict, step: int, n_steps: int, elapsed: float,
               batch_size: int, schedule, prior_times, train_time: float) -> list[float]:
  """Each run's metrics row of the steps just computed; their last batch's accuracies. A row
  at every checkpoint too: a resumed run reads its training time there."""
  accuracies = []
  for i, (writer, prior) in enumerate(zip(writers, prior_times)):
    mine = together.member(last, i)
    accuracies.append(float(mine["accuracy"]))
    writer.write({
        "step": step, "split": "train", "loss": float(mine["loss"]),
        "accuracy": float(mine["accuracy"]), "learning_rate": float(schedule(step - 1)),
        "steps_per_s": n_steps / elapsed, "examples_per_s": n_steps * batch_size / elapsed,
        **({} if prior is None else {"train_time_s": prior + train_time})
    })
  return accuracies


# --- the results -----------------------------------------------------------------------------


def generalization_warning(test_accuracy: float, train_accuracy: float | None,
                           num_classes: int) -> str | None:
  """A warning for a run whose test accuracy is near chance (below twice 1 / num_classes, as
  `results.not_learned` judges) while it fits its training batches (at least half right, and
  at least four times chance): it learned something that does not carry over to the test
  split. None otherwise."""
  chance = 1.0 / num_classes
  if train_accuracy is None or test_accuracy >= 2 * chance or \
      train_accuracy < max(0.5, 4 * chance):
    return None
  return (f"test accuracy {test_accuracy:.1%} is near chance ({chance:.1%} with {num_classes} "
          f"classes) while the last training batch was {train_accuracy:.1%} right: the model "
          "does not generalize. Look at batch norm's statistics (bn_stats_batches), at how the "
          "splits were preprocessed, or train longer.")


def run_result(config, record: dict, cost: dict, final: dict, step: int, train_time_s: float | None,
               compile_time: float, resolved: run_config.Resolved,
               seeds_together: list[int] | None = None) -> dict:
  """The result.json of a finished run (`resolved`: its config's model, as `run_config.resolve`
  gave it); `seeds_together`: the seeds of the runs trained with it as one program
  (`train_seeds`; its train_time_s is its share of their wall time)."""
  return {
      "model": config.model,
      "reduce": bool(config.reduce),
      "dataset": config.dataset,
      "params": cost["total"]["params"],
      "macs": cost["total"]["macs"],
      "flops_xla": cost["total"]["flops_xla"],
      "eval_accuracy": final["accuracy"],
      "eval_loss": final["loss"],
      "train_steps": step,
      "train_time_s": train_time_s,
      "compile_time_s": compile_time,
      # over the whole run, resumed parts included; null when its time is unknown
      "examples_per_s": step * config.batch_size / train_time_s if train_time_s else None,
      "device": env.device_description(),
      "malloc": env.malloc(),
      "jax_version": jax.__version__,
      "seed": config.seed,
      "paths": resolved.paths.resolve("config").as_dict(),
      "match": resolved.match,
      "seeds_together": seeds_together,
      "config": record,
  }
