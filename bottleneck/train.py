"""Training and evaluation: `train_and_evaluate(config, workdir)`.

One jit-compiled train step over `nnx.split` state (model and optimizer), the batch sharded over
every local device on a `jax.sharding.Mesh` "data" axis (data parallelism; the state is
replicated). The config is checked whole first (`bottleneck.run_config.validate`); the workdir
is locked for the run (`bottleneck.workdir.lock`: a second process is refused). It holds:

- `config.json`: the config; it guards the run's checkpoints. A rerun with another config is
  refused while the run has checkpoints (`--restart` sets that run aside), and accepted, saying
  what changed, when it has none (a run that failed early does not block its fix).
- `metrics.jsonl`: one JSON object per logged step and per checkpoint (`split` "train" or
  "eval"), and TensorBoard events in `tensorboard/`.
- `checkpoints/<step>/`: orbax checkpoints every `checkpoint_every_steps`, the last
  `keep_checkpoints` kept. A rerun resumes from the newest readable one and, since batches are a
  function of (seed, step), ends where an uninterrupted run would. Unreadable ones are moved
  under `.set_aside/`, so that their steps are saved again.
- `result.json`: the summary, written last; a workdir that has a complete one is not trained
  again (an unreadable one is set aside and recomputed from the final checkpoint).

Ctrl-C (or SIGTERM, as schedulers send before preempting) checkpoints the step the run is at
(after any save in flight) and stops with one line saying how to resume.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from bottleneck import checkpoints, complexity, env, run_config, validation, workdir as wd
from bottleneck.nn import registry
from bottleneck.data import pipeline
from bottleneck.validation import ConfigError

DTYPES = env.DTYPES
# What a run writes in its workdir; `--restart` and a replaced config set all of it aside.
RUN_FILES = (wd.CONFIG, wd.METRICS, wd.RESULT, wd.CHECKPOINTS, wd.TENSORBOARD, wd.ERROR)


class TrainingDiverged(ConfigError):
  """The loss became NaN or infinite (a config to correct: one line on the command line)."""


Interrupted = validation.Interrupted  # raised after this step's checkpoint was saved


# --- optimizer -------------------------------------------------------------------------------


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int):
  """Learning-rate schedule: "constant", "cosine" (with warm-up) or "exponential" per epoch."""
  o = config.optimizer
  name = validation.choice(o.schedule, "optimizer.schedule",
                           run_config.SCHEDULES, "config")
  lr = o.learning_rate
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "cosine":
    warmup = round(o.get("warmup_epochs", 0) * steps_per_epoch)
    if warmup > 0:
      return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, 1),
                                                end_value=0.0)
    return optax.cosine_decay_schedule(lr, max(total_steps, 1))
  # Zhang et al.: lr * decay_rate ** epoch, changed once per epoch.
  return optax.exponential_decay(lr, transition_steps=steps_per_epoch,
                                 decay_rate=o.decay_rate, staircase=True)


def make_optimizer(config, schedule) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum, or AdamW; `weight_decay` is L2 added to the gradient for SGD
  and decoupled for AdamW."""
  o = config.optimizer
  name = validation.choice(o.name, "optimizer.name", run_config.OPTIMIZERS, "config")
  if name == "adamw":
    return optax.adamw(schedule, weight_decay=o.weight_decay)
  sgd = optax.sgd(schedule, momentum=o.momentum or None, nesterov=o.get("nesterov", False))
  return optax.chain(optax.add_decayed_weights(o.weight_decay), sgd) if o.weight_decay else sgd


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
    text = (f"{self.label}step {step}/{self.total}"
            + (f"  loss {loss:.4f}" if loss is not None else "")
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


class _CtrlC:
  """Within the block, a first Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption) only sets
  `pressed`: the training loop then checkpoints the step it is at, lets the save finish and
  stops. Interrupting orbax in the middle of a save would leave its background threads waiting
  for ever. A second signal interrupts at once. Outside the main thread (Ray workers) it does
  nothing."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.pressed = None  # the name of the signal received
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.pressed:
      raise KeyboardInterrupt("interrupted twice: the checkpoint being written may be lost; "
                              "rerun the same command to resume from the one before.")
    self.pressed = signal.Signals(signum).name
    logging.warning("%s: saving a checkpoint of this step, then stopping (again to stop at "
                    "once)", self.pressed)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      # A signal the process was started to ignore (nohup, a shell's background job) stays so.
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS
                        if signal.getsignal(s) is not signal.SIG_IGN}
    return self

  def __exit__(self, *exc):
    for s, previous in self._previous.items():
      signal.signal(s, previous)
    return False


# --- the workdir -----------------------------------------------------------------------------


def read_result(workdir: str) -> dict:
  """A finished run's result.json; CorruptFile (naming it) if it is cut short or incomplete."""
  return wd.read_json(os.path.join(workdir, wd.RESULT), required=wd.RESULT_KEYS)


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
      diff = run_config.differences(wd.read_json(config_path), record)
    except wd.CorruptFile as e:
      diff = [str(e)]
    if diff:
      if wd.has_checkpoints(workdir):
        raise ConfigError(
            f"workdir {workdir} holds a run with a different config ({'; '.join(diff[:5])}). "
            "Rerun with --restart to set that run aside (moved under .set_aside/, nothing is "
            "deleted), or use another --workdir.")
      moved = wd.set_aside(workdir, RUN_FILES, "replaced by a new config; the run had no "
                           "checkpoint. Changed: " + "; ".join(diff))
      logging.warning("%s had no checkpoint of its run; it takes the new config (%s). The "
                      "old files are in %s", workdir, "; ".join(diff[:5]), moved)
      return None
  if os.path.exists(os.path.join(workdir, wd.RESULT)):
    try:
      return read_result(workdir)
    except wd.CorruptFile as e:
      moved = wd.set_aside(workdir, [wd.RESULT], str(e))
      logging.warning("%s Moved to %s; it is recomputed from the final checkpoint.", e, moved)
  return None


# --- the steps -------------------------------------------------------------------------------


def train_step(model_def, opt_def, dtype, state, batch):
  """One SGD step on (model state, optimizer state); bind the graphdefs and dtype with
  `functools.partial`, then jit. Returns the new state and the batch's loss and accuracy."""
  model = nnx.merge(model_def, state[0])
  optimizer = nnx.merge(opt_def, state[1])

  def loss_fn(model):
    logits = model(batch["image"].astype(dtype)).astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, logits

  (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return (nnx.state(model), nnx.state(optimizer)), {"loss": loss, "accuracy": accuracy}


def eval_step(eval_def, dtype, model_state, batch):
  """Sums of loss and correct predictions over a batch's unmasked examples (eval mode)."""
  model = nnx.merge(eval_def, model_state)
  logits = model(batch["image"].astype(dtype)).astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  correct = jnp.argmax(logits, -1) == batch["label"]
  return {"loss_sum": jnp.sum(loss * batch["mask"]),
          "correct": jnp.sum(correct * batch["mask"]), "count": jnp.sum(batch["mask"])}


class MetricWriter:
  """Rows to `metrics.jsonl` (flushed each) and their numbers to TensorBoard; only the process
  that owns the workdir writes, the others' calls do nothing."""

  def __init__(self, workdir: str, owner: bool):
    self._jsonl = self._tb = None
    if owner:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
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


def training_time_before(rows: list[dict], step: int) -> float | None:
  """Training time of a run up to `step`, from the train row logged with that step's
  checkpoint (every checkpoint step logs one): 0 at step 0, None (unknown) without that row."""
  if not step:
    return 0.0
  at = [r for r in rows if r["split"] == "train" and r["step"] == step]
  return at[-1].get("train_time_s") if at else None


# --- the run ---------------------------------------------------------------------------------


def _first_nonfinite(losses: list[tuple[int, jax.Array]]) -> None:
  for step, loss in losses:
    value = float(loss)
    if not math.isfinite(value):
      raise TrainingDiverged(f"loss became {value} at step {step}; no checkpoint was written "
                             "after it. Lower optimizer.learning_rate or check the data, and "
                             "rerun with --restart (the diverged run is set aside).")


def build_model(config: ml_collections.ConfigDict, num_classes: int, *,
                initialise: bool = True):
  """The registry model a config trains, freshly initialised from its seed; with
  `initialise=False` only its structure, with placeholder values (`registry.fill_random`), for
  a caller that overwrites every value (restoring a checkpoint): the initialisers' compilation
  is skipped."""
  dtype = DTYPES[validation.choice(config.dtype, "dtype", DTYPES, "config")]
  args = dict(reduce=config.reduce, num_classes=num_classes, image_size=config.image_size,
              dtype=dtype, paths=run_config.model_paths(config),
              **run_config.matched_kwargs(config, num_classes))
  if not initialise:
    return registry.fill_random(registry.abstract_model(config.model, **args))
  return registry.create_model(config.model,
                               rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1),
                               **args)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       restart: bool = False, label: str | None = None) -> dict:
  """Trains `config.model` on `config.dataset`, evaluates it, returns the result.json dict.

  The config is checked whole before anything is read or written; the workdir is locked for
  the run (one process at a time). `restart` sets a previous run in the workdir aside instead
  of resuming it. `label` prefixes the progress lines (runs sharing a terminal)."""
  run_config.validate(config)
  record = run_config.record(config)
  owner = jax.process_index() == 0  # writes the workdir's files and holds its lock
  with wd.lock(workdir) if owner else contextlib.nullcontext():
    finished = prepare_workdir(workdir, record, restart=restart) if owner else None
    if finished is not None:
      logging.info("%s is finished: its result is in %s", workdir,
                   os.path.join(workdir, wd.RESULT))
      print(f"already finished: result in {os.path.join(workdir, wd.RESULT)}", file=sys.stderr)
      return finished
    return _train(config, record, workdir, owner, label)


def data_parallel(config) -> tuple[NamedSharding, NamedSharding]:
  """(batch sharding, replicated sharding) over every device; batch sizes must divide."""
  n_dev = jax.device_count()
  for name in ("batch_size", "eval_batch_size"):
    if config[name] % n_dev:
      raise ConfigError(f"{name}={config[name]} is not divisible by the {n_dev} devices; "
                        f"use a multiple of {n_dev}.")
  mesh = jax.make_mesh((n_dev,), ("data",))
  logging.info("devices: %s; process %d of %d", jax.devices(), jax.process_index(),
               jax.process_count())
  return NamedSharding(mesh, P("data")), NamedSharding(mesh, P())


def to_device(batch: dict, sharding: NamedSharding) -> dict:
  """This process's part of a global batch, as arrays sharded over the batch axis."""
  per_process = len(batch["label"]) // jax.process_count()
  lo = jax.process_index() * per_process
  return {k: jax.make_array_from_process_local_data(sharding, v[lo:lo + per_process])
          for k, v in batch.items()}


def evaluate(eval_step_fn, model_state, batches, sharding) -> dict:
  """Loss and accuracy over every batch of an evaluation split."""
  sums = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
  for batch in batches.eval_batches():
    out = jax.device_get(eval_step_fn(model_state, to_device(batch, sharding)))
    sums = {k: sums[k] + float(out[k]) for k in sums}
  return {"loss": sums["loss_sum"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}


def resume(workdir: str, manager, states: dict, owner: bool) -> tuple[int, dict, float | None]:
  """(step, states, training time before it) of the newest readable checkpoint, or (0,
  `states`, 0.0) for a fresh run. Unreadable checkpoints are set aside so that their steps can
  be saved again; metrics rows logged after the checkpoint are dropped."""
  step, states = checkpoints.restore_latest(manager, states,
                                            set_aside_in=workdir if owner else None)
  step = step or 0  # none readable: a fresh run
  metrics_path = os.path.join(workdir, wd.METRICS)
  rows = [r for r in wd.read_jsonl(metrics_path) if r["step"] <= step]
  if owner:
    wd.truncate_jsonl(metrics_path, rows)
  prior_time = training_time_before(rows, step)
  if step:
    logging.info("resuming from the checkpoint at step %d", step)
    if prior_time is None:
      logging.warning("no metrics row at step %d: the training time before it is unknown, so "
                      "train_time_s and examples_per_s are recorded as null", step)
  return step, states, prior_time


def _train(config, record: dict, workdir: str, owner: bool, label: str | None) -> dict:
  data_sharding, replicated = data_parallel(config)
  splits = pipeline.load_splits(config.dataset, (config.train_split, config.eval_split),
                                config.get("data_dir"))
  pipeline.log_split_sizes(splits)
  train_split, eval_split = splits[config.train_split], splits[config.eval_split]

  model = build_model(config, train_split.num_classes)
  match = run_config.match_record(config, train_split.num_classes)
  if match:
    logging.info("width %.4f: %s %s against a budget of %.4g%s", match["width"],
                 f"{match['cost']:,}", match["metric"], match["budget"],
                 "" if match["replaced_width"] is None else
                 f" (it replaces the configured model_kwargs.width={match['replaced_width']})")
  dtype = DTYPES[config.dtype]
  # Compiler options of the jits: which library computes the convolutions (bottleneck.nn.paths).
  options = run_config.model_paths(config).compiler_options("config")
  cost = complexity.analyze_model(model)
  logging.info("model %s (reduce=%s): %s params, %.4g GMACs, %s XLA GFLOPs per image",
               config.model, config.reduce, f"{cost['total']['params']:,}",
               cost["total"]["macs"] / 1e9, cost["total"]["flops_xla"] and
               f"{cost['total']['flops_xla'] / 1e9:.4g}")
  preprocess = pipeline.Preprocess(config.image_size, model.in_channels, **config.data)
  train_batches = pipeline.Batches(train_split, config.batch_size, preprocess, config.seed)
  eval_batches = pipeline.Batches(eval_split, config.eval_batch_size, preprocess, config.seed)
  spe = train_batches.steps_per_epoch
  total_steps = config.num_train_steps if config.get("num_train_steps") else max(1, round(
      config.num_epochs * spe))
  schedule = make_schedule(config, spe, total_steps)
  optimizer = nnx.Optimizer(model, make_optimizer(config, schedule), wrt=nnx.Param)
  # Only a config that got this far is recorded: a run refused for bad input leaves no
  # config.json behind to block the corrected rerun in the same workdir.
  if owner:
    wd.write_json(os.path.join(workdir, wd.CONFIG), record)

  model.train()
  model_def, model_state = nnx.split(model)
  model.eval()
  eval_def, _ = nnx.split(model)
  opt_def, opt_state = nnx.split(optimizer)
  manager = checkpoints.manager(workdir, keep=config.keep_checkpoints)
  start_step, restored, prior_time = resume(
      workdir, manager, {"model": model_state, "optimizer": opt_state}, owner)
  state = jax.device_put((restored["model"], restored["optimizer"]), replicated)

  t = time.time()
  first = to_device(train_batches.train_batch(start_step), data_sharding)
  train_step_c = jax.jit(functools.partial(train_step, model_def, opt_def, dtype),
                         donate_argnums=0, out_shardings=(replicated, replicated),
                         compiler_options=options).lower(state, first).compile()
  compile_time = time.time() - t
  logging.info("train step compiled in %.1f s", compile_time)
  eval_step_j = jax.jit(functools.partial(eval_step, eval_def, dtype), compiler_options=options)
  run_eval = lambda model_state: evaluate(eval_step_j, model_state, eval_batches, data_sharding)

  writer = MetricWriter(workdir, owner)
  progress = Progress(total_steps, start_step, config.log_every_steps, label)
  pending, window_t, train_time = [], time.time(), 0.0
  step, stop = start_step, None
  try:
    with _CtrlC() as ctrl_c:
      while step < total_steps:
        batch = (first if step == start_step else
                 to_device(train_batches.train_batch(step), data_sharding))
        state, metrics = train_step_c(state, batch)
        step += 1
        pending.append((step, metrics))
        # Ctrl-C: this step is checkpointed (and the save finished) before the run stops. Read
        # once: a signal that lands later in this step is handled at the next one (read twice,
        # a signal between the reads stopped the run without the checkpoint it announced).
        stop = ctrl_c.pressed
        ckpt_now = step % config.checkpoint_every_steps == 0 or step == total_steps or stop
        if step % config.log_every_steps != 0 and not ckpt_now:
          progress.update(step)
          continue
        jax.block_until_ready(state)
        _first_nonfinite([(s, m["loss"]) for s, m in pending])
        elapsed = time.time() - window_t
        train_time += elapsed  # wall time of training steps and data, not eval or saving
        last = jax.device_get(pending[-1][1])
        progress.update(step, float(last["loss"]), force=True)
        # A row at every checkpoint too: a resumed run reads its training time there.
        writer.write({"step": step, "split": "train", "loss": float(last["loss"]),
                      "accuracy": float(last["accuracy"]),
                      "learning_rate": float(schedule(step - 1)),
                      "steps_per_s": len(pending) / elapsed,
                      "examples_per_s": len(pending) * config.batch_size / elapsed,
                      **({} if prior_time is None else
                         {"train_time_s": prior_time + train_time})})
        if (config.eval_every_steps and step % config.eval_every_steps == 0
            and step != total_steps and not stop):
          writer.write({"step": step, "split": "eval", **run_eval(state[0])})
        if ckpt_now:
          checkpoints.save(manager, step, {"model": state[0], "optimizer": state[1]})
        pending, window_t = [], time.time()
        if stop:
          break
      manager.wait_until_finished()
    progress.close()
    if stop and step < total_steps:
      raise Interrupted(f"interrupted ({ctrl_c.pressed}) at step {step} of {total_steps}; the "
                        f"checkpoint at step {step} is saved. Rerun the same command to resume.")
    final = run_eval(state[0])
    writer.write({"step": step, "split": "eval", **final})
  finally:
    manager.close()  # waits for an in-flight save, whatever ended the loop
    writer.close()
  train_time_s = None if prior_time is None else prior_time + train_time
  result = run_result(config, record, cost, final, step, train_time_s, compile_time,
                      run_config.match_record(config, train_split.num_classes))
  if owner:
    wd.write_json(os.path.join(workdir, wd.RESULT), result)
  logging.info("eval accuracy %.4f, loss %.4f after %d steps; result in %s", final["accuracy"],
               final["loss"], step, os.path.join(workdir, wd.RESULT))
  return result


def run_result(config, record: dict, cost: dict, final: dict, step: int,
               train_time_s: float | None, compile_time: float,
               match: dict | None = None) -> dict:
  """The result.json of a finished run."""
  return {
      "model": config.model, "reduce": bool(config.reduce), "dataset": config.dataset,
      "params": cost["total"]["params"], "macs": cost["total"]["macs"],
      "flops_xla": cost["total"]["flops_xla"], "eval_accuracy": final["accuracy"],
      "eval_loss": final["loss"], "train_steps": step, "train_time_s": train_time_s,
      "compile_time_s": compile_time,
      # over the whole run, resumed parts included; null when its time is unknown
      "examples_per_s": step * config.batch_size / train_time_s if train_time_s else None,
      "device": env.device_description(), "jax_version": jax.__version__, "seed": config.seed,
      "paths": run_config.model_paths(config).resolve("config").as_dict(),
      "match": match, "config": record,
  }
