"""Training and evaluation: `train_and_evaluate(config, workdir)`.

One jit-compiled train step over `nnx.split` state (model and optimizer), the batch sharded over
every local device on a `jax.sharding.Mesh` "data" axis (data parallelism; the state is
replicated). The config is checked whole first (`bottleneck.train.run_config.validate`); the workdir
is locked for the run (`bottleneck.util.workdir.lock`: a second process is refused). It holds:

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

`train_seeds(configs, workdirs)` trains configs that differ only in their seed as one program,
their states stacked and the steps `jax.vmap`-ed (`Together`): one compile for all of them,
each run still with its own workdir as above (the sweep's default for a config's seeds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from bottleneck.data import pipeline
from bottleneck.measure import complexity
from bottleneck.nn import layers
from bottleneck.train import builders, checkpoints, run_config
from bottleneck.util import env, signals, workdir as wd
from bottleneck.util.errors import ConfigError, TrainingDiverged

DTYPES = env.DTYPES
# What a run writes in its workdir; `--restart` and a replaced config set all of it aside.
RUN_FILES = (wd.CONFIG, wd.METRICS, wd.RESULT, wd.CHECKPOINTS, wd.TENSORBOARD, wd.ERROR)

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


# --- the workdir -----------------------------------------------------------------------------


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
      diff = run_config.differences(wd.read_json(config_path, mapping=True), record)
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


# --- the steps -------------------------------------------------------------------------------


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy per example, picking each label's log-probability by a one-hot
  product, not a gather (optax's integer-label version): the same function, to a rounding,
  and no gather for the batch sharding to resolve, which JAX refuses for a batch of 1 on an
  explicit mesh."""
  return optax.softmax_cross_entropy(logits,
                                     jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype))


def train_step(model_def, opt_def, dtype, state, batch):
  """One SGD step on (model state, optimizer state); bind the graphdefs and dtype with
  `functools.partial`, then jit. Returns the new state and the batch's loss and accuracy."""
  model = nnx.merge(model_def, state[0])
  optimizer = nnx.merge(opt_def, state[1])

  def loss_fn(model):
    logits = model(batch["image"].astype(dtype)).astype(jnp.float32)
    loss = cross_entropy(logits, batch["label"]).mean()
    return loss, logits

  (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return (nnx.state(model), nnx.state(optimizer)), {"loss": loss, "accuracy": accuracy}


def eval_step(eval_def, dtype, model_state, batch):
  """Sums of loss and correct predictions over a batch's unmasked examples, and every
  example's predicted class (eval mode)."""
  model = nnx.merge(eval_def, model_state)
  logits = model(batch["image"].astype(dtype)).astype(jnp.float32)
  loss = cross_entropy(logits, batch["label"])
  predicted = jnp.argmax(logits, -1)
  correct = predicted == batch["label"]
  return {
      "loss_sum": jnp.sum(loss * batch["mask"]), "correct": jnp.sum(correct * batch["mask"]),
      "count": jnp.sum(batch["mask"]), "predicted": predicted
  }


def batch_norm_stats(model_def, dtype, model_state, batch) -> list[tuple[jax.Array, jax.Array]]:
  """Each batch-norm layer's mean and variance over `batch`, as training computes them
  (`model_def`: the model in training mode): the running statistics are zeroed, one forward
  pass moves them by (1 - momentum) x the batch's, and that is divided out again."""
  model = nnx.merge(model_def, model_state)
  norms = layers.batch_norms(model)
  for m in norms:
    m.mean[...] = jnp.zeros_like(m.mean[...])
    m.var[...] = jnp.zeros_like(m.var[...])
  model(batch["image"].astype(dtype))
  return [(m.mean[...] / (1 - m.momentum), m.var[...] / (1 - m.momentum)) for m in norms]


def set_batch_norm_stats(model_def, model_state, stats):
  """`model_state` with each batch-norm layer's running mean and variance replaced."""
  model = nnx.merge(model_def, model_state)
  for m, (mean, var) in zip(layers.batch_norms(model), stats, strict=True):
    m.mean[...] = jnp.asarray(mean, m.mean[...].dtype)
    m.var[...] = jnp.asarray(var, m.var[...].dtype)
  return nnx.state(model)


def precise_batch_norm(stats_fn, set_fn, model_state, batches) -> object:
  """"Precise BN" (Wu and Johnson 2021, "Rethinking 'Batch' in BatchNorm"): the running
  statistics replaced by the statistics of the training data over `batches`, their mean of
  batch means and, by the law of total variance, the mean of batch variances plus the variance
  of the batch means. The exponential average that training keeps (momentum 0.99) still holds
  mostly its initial values after a few hundred steps: a short run would evaluate at chance."""
  sums = None
  for n, batch in enumerate(batches, 1):  # noqa: B007  # n: the count, after the loop
    stats = jax.device_get(stats_fn(model_state, batch))
    terms = [(np.asarray(m, np.float64),
              np.asarray(v, np.float64) + np.square(np.asarray(m, np.float64))) for m, v in stats]
    sums = terms if sums is None else [(a + m, b + v) for (a, b), (m, v) in zip(sums, terms)]
  if sums is None:
    return model_state
  means = [(a / n, b / n - np.square(a / n)) for a, b in sums]
  return set_fn(model_state, [(m, np.maximum(v, 0.0)) for m, v in means])


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


def training_time_before(rows: list[dict], step: int) -> float | None:
  """Training time of a run up to `step`, from the train row logged with that step's
  checkpoint (every checkpoint step logs one): 0 at step 0, None (unknown) without that row."""
  if not step:
    return 0.0
  at = [r for r in rows if r["split"] == "train" and r["step"] == step]
  seconds = at[-1].get("train_time_s") if at else None
  ok = type(seconds) in (int, float) and math.isfinite(seconds) and seconds >= 0
  return float(seconds) if ok else None


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
    finished = prepare_workdir(workdir, record, restart=restart) if owner else None
    if finished is not None:
      _say_finished(workdir)
      return finished
    return _train([Member(config, record, workdir)], owner, label)[0]


class SeedsApart(RuntimeError):
  """Seeds given to `train_seeds` that cannot go on as one program (their checkpoints are at
  different steps, or one of them diverged): train each alone (`train_and_evaluate`), which
  resumes from the checkpoints already written."""


def train_seeds(configs: list[ml_collections.ConfigDict], workdirs: list[str], *,
                restarts: list[bool] | None = None, label: str | None = None) -> list[dict]:
  """Trains configs that differ only in their `seed` as one program, the seeds stacked on a
  leading axis (`jax.vmap`; see `Together`); returns their results in order.

  Each run keeps its own initialisation, data order, workdir, checkpoints, metrics and
  result.json, equal to those of training it alone (`train_and_evaluate`) to within float
  rounding; a finished one is returned as it is, and `restarts[i]` sets run i's previous run
  aside as `restart` does. The compile, the model's analysis and the
  per-step overhead are paid once for all of them, and a run's `train_time_s` is its share of
  the wall time. Raises SeedsApart when the seeds cannot go on together (train each alone
  then), ConfigError when the configs differ in more than the seed, WorkdirBusy when another
  process holds one of the workdirs."""
  if len(configs) != len(workdirs) or not configs:
    raise ConfigError(f"train_seeds: {len(configs)} configs for {len(workdirs)} workdirs.")
  for c in configs:
    run_config.validate(c)
  records = [run_config.record(c) for c in configs]
  for c, r in zip(configs[1:], records[1:]):
    diff = run_config.differences({**records[0], "seed": 0}, {**r, "seed": 0})
    if diff:
      raise ConfigError(f"only runs that differ in their seed train together; seed {c.seed} "
                        f"also differs in {'; '.join(diff[:3])}.")
  seeds = [c.seed for c in configs]
  if len(set(seeds)) < len(seeds) or len(set(map(os.path.abspath, workdirs))) < len(workdirs):
    raise ConfigError(f"train_seeds: each run needs its own seed and workdir; got seeds "
                      f"{seeds} and workdirs {workdirs}.")
  owner = jax.process_index() == 0
  with contextlib.ExitStack() as locks:
    if owner:
      for w in workdirs:
        locks.enter_context(wd.lock(w))
    restarts = restarts or [False] * len(configs)
    results = [
        prepare_workdir(w, r, restart=s) if owner else None
        for w, r, s in zip(workdirs, records, restarts)
    ]
    for w, r in zip(workdirs, results):
      if r is not None:
        _say_finished(w)
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
      trained = _train([Member(configs[i], records[i], workdirs[i]) for i in todo], owner, label
                       or f"seeds {','.join(str(configs[i].seed) for i in todo)}")
      for i, r in zip(todo, trained):
        results[i] = r
  return results


def _say_finished(workdir: str) -> None:
  logging.info("%s is finished: its result is in %s", workdir, os.path.join(workdir, wd.RESULT))
  print(f"already finished: result in {os.path.join(workdir, wd.RESULT)}", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a training program: its config, the record of it and its workdir."""
  config: ml_collections.ConfigDict
  record: dict
  workdir: str


class Together:
  """The runs one program trains: one run as itself, or `n` seeds of one config with every
  array stacked on a leading axis and the steps `jax.vmap`-ed over it."""

  def __init__(self, n: int):
    self.n = n

  def stack(self, trees: list, xp=jnp):
    """One tree of the runs' trees (`xp=np` for host batches)."""
    return trees[0] if self.n == 1 else jax.tree.map(lambda *xs: xp.stack(xs), *trees)

  def member(self, tree, i: int):
    """Run `i`'s part of a stacked tree."""
    return tree if self.n == 1 else jax.tree.map(lambda x: x[i], tree)

  def map(self, fn, in_axes=0):
    return fn if self.n == 1 else jax.vmap(fn, in_axes=in_axes)


def data_parallel(config, stacked: bool = False) -> tuple[NamedSharding, NamedSharding]:
  """(batch sharding, replicated sharding) over every device; batch sizes must divide. With
  `stacked`, batches carry the runs' axis first and are sharded over their second."""
  n_dev = jax.device_count()
  for name in ("batch_size", "eval_batch_size"):
    if config[name] % n_dev:
      raise ConfigError(f"{name}={config[name]} is not divisible by the {n_dev} devices; "
                        f"use a multiple of {n_dev}.")
  # Stacked runs' convolutions are batched by reshapes that an explicitly sharded axis
  # refuses; XLA places those itself.
  mesh = jax.make_mesh(
      (n_dev,), ("data",),
      axis_types=(jax.sharding.AxisType.Auto if stacked else jax.sharding.AxisType.Explicit,))
  logging.info("devices: %s; process %d of %d; %s", jax.devices(), jax.process_index(),
               jax.process_count(), env.malloc())
  return (NamedSharding(mesh, P(None, "data") if stacked else P("data")), NamedSharding(mesh, P()))


def to_device(batch: dict, sharding: NamedSharding) -> dict:
  """This process's part of a global batch, as arrays sharded over the batch axis (the axis
  `sharding` names "data")."""
  axis = list(sharding.spec).index("data")
  per_process = batch["label"].shape[axis] // jax.process_count()
  lo = jax.process_index() * per_process
  part = lambda v: v[(slice(None),) * axis + (slice(lo, lo + per_process),)]
  return {k: jax.make_array_from_process_local_data(sharding, part(v)) for k, v in batch.items()}


def evaluate(eval_step_fn, model_state, batches, sharding, n: int = 1) -> list[dict]:
  """Loss and accuracy over every batch of an evaluation split, one dict per run (`n` runs
  stacked in `model_state`), with each run's predicted class of every example and the labels
  ("predicted", "label": arrays in the split's order)."""
  sums = {k: np.zeros(n) for k in ("loss_sum", "correct", "count")}
  predicted, labels = [[] for _ in range(n)], []
  for batch in batches.eval_batches():
    out = eval_step_fn(model_state, to_device(batch, sharding))
    # Each example's prediction; on several hosts, each holds a slice of the batch.
    every = (out["predicted"] if out["predicted"].is_fully_addressable else
             multihost_utils.process_allgather(out["predicted"], tiled=True))
    out = jax.device_get({**out, "predicted": every})
    sums = {k: sums[k] + np.asarray(out[k], np.float64).reshape(n) for k in sums}
    keep = np.asarray(batch["mask"]) > 0
    labels.append(np.asarray(batch["label"])[keep])
    for i, p in enumerate(np.asarray(out["predicted"]).reshape(n, -1)):
      predicted[i].append(p[keep])
  return [{
      "loss": float(sums["loss_sum"][i] / sums["count"][i]),
      "accuracy": float(sums["correct"][i] / sums["count"][i]),
      "predicted": np.concatenate(predicted[i]), "label": np.concatenate(labels)
  } for i in range(n)]


def scalars(row: dict) -> dict:
  """An evaluation's row without its per-example arrays (what metrics.jsonl holds)."""
  return {k: v for k, v in row.items() if k not in ("predicted", "label")}


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


def _first_nonfinite(losses: list[tuple[int, jax.Array]], together: Together,
                     members: list[Member]) -> None:
  for step, loss in losses:
    values = np.asarray(jax.device_get(loss), np.float64).reshape(together.n)
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if not bad:
      continue
    if together.n > 1:
      raise SeedsApart(f"seed {members[bad[0]].config.seed} diverged (loss {values[bad[0]]}) at "
                       f"step {step}; the seeds go on one at a time from their last checkpoints")
    raise TrainingDiverged(f"loss became {values[0]} at step {step}; no checkpoint was written "
                           "after it. Lower optimizer.learning_rate or check the data, and "
                           "rerun with --restart (the diverged run is set aside).")


def _train(members: list[Member], owner: bool, label: str | None) -> list[dict]:
  """Trains the runs of `members` (one, or seeds of one config: `Together`) and writes their
  workdirs; their locks are the caller's. Set-up, loop, finish (`Program`)."""
  with contextlib.ExitStack() as closers:  # what the set-up opens, closed however it ends
    program = Program(members, owner, label, closers)
    # Ctrl-C or SIGTERM at any point from here, the last step and the final evaluation
    # included, ends the run with its checkpoint saved and raises Interrupted (a sweep stops
    # there too); a signal after the last step's read lets the run finish and write its
    # result first.
    with signals.CtrlC("saving a checkpoint of this step, then stopping") as ctrl_c:
      with closers.pop_all():  # checkpoints and metrics closed before the results are written
        finals = program.final_evaluation(program.loop(ctrl_c), ctrl_c)
      results = program.finish(finals)
  if ctrl_c.pressed:  # after the last step's read: the run is finished, the work stops here
    raise Interrupted(f"interrupted ({ctrl_c.pressed}) at the end of the run: all "
                      f"{program.step} steps are trained and the result is saved in "
                      f"{', '.join(os.path.join(m.workdir, wd.RESULT) for m in members)}. "
                      "Rerun the same command to go on with what remains.")
  return results


class Program:
  """One training program: a run, or the seeds of one config trained together. Built in three
  parts: the set-up (`__init__`: data, models, the config recorded, checkpoints resumed, the
  steps compiled; managers and writers registered with `closers`), the `loop` of steps with
  its logging, evaluations and checkpoints, and the `finish` (results written)."""

  def __init__(self, members: list[Member], owner: bool, label: str | None,
               closers: contextlib.ExitStack):
    self.members, self.owner, self.label = members, owner, label
    self.config = config = members[0].config  # the members' configs differ in their seed only
    self.together = Together(len(members))
    self.data_sharding, self.replicated = data_parallel(config, stacked=self.together.n > 1)
    models, optimizers = self._data_and_models()
    # Only a config that got this far is recorded: a run refused for bad input leaves no
    # config.json behind to block the corrected rerun in the same workdir.
    if owner:
      for m in members:
        wd.write_json(os.path.join(m.workdir, wd.CONFIG), m.record)
    model = models[0]
    model.train()
    model_def, _ = nnx.split(model)
    model.eval()
    eval_def, _ = nnx.split(model)
    model.train()
    opt_def, _ = nnx.split(optimizers[0])
    self.managers = [checkpoints.manager(m.workdir, keep=config.keep_checkpoints) for m in members]
    for manager in self.managers:
      closers.callback(manager.close)  # waits for an in-flight save, whatever ended the run
    self._resume(models, optimizers)
    self._compile(model, model_def, eval_def, opt_def)
    self.writers = [MetricWriter(m.workdir, owner) for m in members]
    for writer in self.writers:
      closers.callback(writer.close)

  def _data_and_models(self) -> tuple[list, list]:
    """The splits, batches, models, cost, schedule and optimizers; the models and their
    optimizers."""
    config, members = self.config, self.members
    splits = pipeline.config_splits(config, (config.train_split, config.eval_split))
    pipeline.log_split_sizes(splits)
    train_split, eval_split = splits[config.train_split], splits[config.eval_split]
    self.num_classes = train_split.num_classes
    models = [builders.build_model(m.config, train_split.num_classes) for m in members]
    self.match = match = run_config.match_record(config, train_split.num_classes)
    if match:
      logging.info(
          "width %.4f: %s %s against a budget of %.4g%s", match["width"], f"{match['cost']:,}",
          match["metric"], match["budget"], "" if match["replaced_width"] is None else
          f" (it replaces the configured model_kwargs.width={match['replaced_width']})")
    self.cost = cost = complexity.analyze_model(models[0])
    logging.info("model %s (reduce=%s): %s params, %.4g GMACs, %s XLA GFLOPs per image%s",
                 config.model, config.reduce, f"{cost['total']['params']:,}",
                 cost["total"]["macs"] / 1e9, cost["total"]["flops_xla"]
                 and f"{cost['total']['flops_xla'] / 1e9:.4g}",
                 f"; {self.together.n} seeds trained together" if self.together.n > 1 else "")
    preprocess = pipeline.Preprocess.from_config(config, models[0].in_channels)
    self.train_batches = [
        pipeline.Batches(train_split, config.batch_size, preprocess, m.config.seed) for m in members
    ]
    self.eval_batches = pipeline.Batches(eval_split, config.eval_batch_size, preprocess,
                                         config.seed)
    spe = self.train_batches[0].steps_per_epoch
    self.total_steps = config.num_train_steps if config.get("num_train_steps") else max(
        1, round(config.num_epochs * spe))
    self.schedule = builders.make_schedule(config, spe, self.total_steps)
    optimizers = [
        nnx.Optimizer(m, builders.make_optimizer(config, self.schedule), wrt=nnx.Param)
        for m in models
    ]
    return models, optimizers

  def _resume(self, models, optimizers) -> None:
    """The state to start from: each run's newest readable checkpoint, or its fresh state."""
    members = self.members
    resumed = [
        resume(m.workdir, manager, {"model": nnx.state(mo), "optimizer": nnx.state(o)}, self.owner)
        for m, manager, mo, o in zip(members, self.managers, models, optimizers)
    ]
    self.start_step = resumed[0][0]
    if any(r[0] != self.start_step for r in resumed):
      raise SeedsApart("the seeds' checkpoints are at different steps (" + ", ".join(
          f"seed {m.config.seed}: {r[0]}" for m, r in zip(members, resumed))
                       + "); each resumes alone")
    self.prior_times = [r[2] for r in resumed]
    self.state = jax.device_put(
        self.together.stack([(r[1]["model"], r[1]["optimizer"]) for r in resumed]), self.replicated)

  def train_batch(self, step: int) -> dict:
    """The runs' batches of `step`, stacked, on the devices."""
    return to_device(self.together.stack([b.train_batch(step) for b in self.train_batches], np),
                     self.data_sharding)

  def _compile(self, model, model_def, eval_def, opt_def) -> None:
    """The train step (compiled now, timed), the evaluation and batch norm's statistics."""
    config, together, replicated = self.config, self.together, self.replicated
    dtype = DTYPES[config.dtype]
    # Compiler options of the jits: which library computes the convolutions (bottleneck.nn.paths).
    options = run_config.model_paths(config).compiler_options("config")
    t = time.time()
    self.first = self.train_batch(self.start_step)
    self.train_step = jax.jit(
        together.map(functools.partial(train_step, model_def, opt_def, dtype)), donate_argnums=0,
        out_shardings=(replicated, replicated),
        compiler_options=options).lower(self.state, self.first).compile()
    self.compile_time = time.time() - t
    logging.info("train step compiled in %.1f s", self.compile_time)
    eval_step_j = jax.jit(
        together.map(functools.partial(eval_step, eval_def, dtype), in_axes=(0, None)),
        compiler_options=options)
    eval_sharding = NamedSharding(self.data_sharding.mesh, P("data"))  # one batch for every run
    self.run_eval = lambda model_state: evaluate(eval_step_j, model_state, self.eval_batches,
                                                 eval_sharding, together.n)
    # Batch norm's evaluation statistics, recomputed over training batches before every
    # evaluation and before the final checkpoint (`precise_batch_norm`).
    bn_batches = config.get("bn_stats_batches", 0) if layers.batch_norms(model) else 0
    if bn_batches:
      stats_c = jax.jit(together.map(functools.partial(batch_norm_stats, model_def, dtype)),
                        compiler_options=options)
      set_c = jax.jit(together.map(functools.partial(set_batch_norm_stats, model_def)),
                      out_shardings=replicated)
      self.recalibrate = lambda st: (precise_batch_norm(stats_c, set_c, st[0],
                                                        (self.train_batch(s)
                                                         for s in range(bn_batches))), st[1])
    else:
      self.recalibrate = lambda st: st

  def loop(self, ctrl_c: signals.CtrlC) -> str | None:
    """The steps from `start_step`: logged, evaluated and checkpointed as the config says.
    Returns the signal that stopped it (None: it ran to the end)."""
    config, together = self.config, self.together
    self.train_accuracy = [None] * together.n
    self.progress = Progress(self.total_steps, self.start_step, config.log_every_steps, self.label)
    pending, window_t, self.train_time = [], time.time(), 0.0
    self.step, stop, state = self.start_step, None, self.state
    while self.step < self.total_steps:
      batch = self.first if self.step == self.start_step else self.train_batch(self.step)
      state, metrics = self.train_step(state, batch)
      self.step += 1
      step = self.step
      pending.append((step, metrics))
      # At most two steps in flight: the progress line shows steps computed, not queued, and a
      # Ctrl-C stops the run a step later, not after every step it had dispatched ahead.
      if len(pending) >= 2:
        jax.block_until_ready(pending[-2][1]["loss"])
      # Ctrl-C: this step is checkpointed (and the save finished) before the run stops. Read
      # once: a signal that lands later in this step is handled at the next one (read twice,
      # a signal between the reads stopped the run without the checkpoint it announced).
      stop = ctrl_c.pressed
      ckpt_now = step % config.checkpoint_every_steps == 0 or step == self.total_steps or stop
      if step % config.log_every_steps != 0 and not ckpt_now:
        self.progress.update(step)
        continue
      jax.block_until_ready(state)
      _first_nonfinite([(s, m["loss"]) for s, m in pending], together, self.members)
      # Wall time of training steps and data, not eval or saving; runs trained together
      # share it evenly.
      elapsed = (time.time() - window_t) / together.n
      self.train_time += elapsed
      self._log_train(jax.device_get(pending[-1][1]), len(pending), elapsed)
      evaluate_now = (config.eval_every_steps and step % config.eval_every_steps == 0
                      and step != self.total_steps and not stop)
      if evaluate_now or step == self.total_steps:
        state = self.recalibrate(state)
      if evaluate_now:
        for writer, row in zip(self.writers, self.run_eval(state[0])):
          writer.write({"step": step, "split": "eval", **scalars(row)})
      if ckpt_now:
        for i, manager in enumerate(self.managers):
          checkpoints.save(manager, step,
                           together.member({"model": state[0], "optimizer": state[1]}, i))
      pending, window_t = [], time.time()
      if stop:
        break
    self.state = state
    return stop

  def _log_train(self, last: dict, n_steps: int, elapsed: float) -> None:
    """The progress line and each run's metrics row of the steps just computed."""
    step = self.step
    self.progress.update(step, float(np.mean(last["loss"])), force=True)
    for i, (writer, prior) in enumerate(zip(self.writers, self.prior_times)):
      mine = self.together.member(last, i)
      self.train_accuracy[i] = float(mine["accuracy"])
      # A row at every checkpoint too: a resumed run reads its training time there.
      writer.write({
          "step": step, "split": "train", "loss": float(mine["loss"]),
          "accuracy": float(mine["accuracy"]), "learning_rate": float(self.schedule(step - 1)),
          "steps_per_s": n_steps / elapsed,
          "examples_per_s": n_steps * self.config.batch_size / elapsed,
          **({} if prior is None else {"train_time_s": prior + self.train_time})
      })

  def final_evaluation(self, stop: str | None, ctrl_c: signals.CtrlC) -> list[dict]:
    """After the loop: the saves finished, then Interrupted if a signal stopped it early, else
    the final evaluation, logged; each run's final metrics."""
    for manager in self.managers:
      manager.wait_until_finished()
    self.progress.close()
    step = self.step
    if stop and step < self.total_steps:
      where = (f"the checkpoint at step {step} is saved"
               if self.together.n == 1 else f"each seed's checkpoint at step {step} is saved")
      raise Interrupted(f"interrupted ({ctrl_c.pressed}) at step {step} of {self.total_steps}; "
                        f"{where}. Rerun the same command to resume.")
    finals = self.run_eval(self.state[0])
    for writer, final in zip(self.writers, finals):
      writer.write({"step": step, "split": "eval", **scalars(final)})
    return finals

  def finish(self, finals: list[dict]) -> list[dict]:
    """Each run's result.json (after its predictions: a result marks the run finished)."""
    members, together, step = self.members, self.together, self.step
    results = []
    for i, (m, final, prior) in enumerate(zip(members, finals, self.prior_times)):
      result = run_result(m.config, m.record, self.cost, final, step,
                          None if prior is None else prior + self.train_time, self.compile_time,
                          self.match, [o.config.seed for o in members] if together.n > 1 else None)
      result["num_classes"] = self.num_classes
      result["warning"] = generalization_warning(final["accuracy"], self.train_accuracy[i],
                                                 self.num_classes)
      if result["warning"]:
        logging.warning("%s: %s", m.workdir, result["warning"])
      if self.owner:  # the predictions first: a result.json marks the run finished
        wd.write_predictions(os.path.join(m.workdir, wd.PREDICTIONS), final["predicted"],
                             final["label"])
        wd.write_json(os.path.join(m.workdir, wd.RESULT), result)
      logging.info("eval accuracy %.4f, loss %.4f after %d steps; result in %s", final["accuracy"],
                   final["loss"], step, os.path.join(m.workdir, wd.RESULT))
      results.append(result)
    return results


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
               compile_time: float, match: dict | None = None,
               seeds_together: list[int] | None = None) -> dict:
  """The result.json of a finished run; `seeds_together`: the seeds of the runs trained with it
  as one program (`train_seeds`; its train_time_s is its share of their wall time)."""
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
      "paths": run_config.model_paths(config).resolve("config").as_dict(),
      "match": match,
      "seeds_together": seeds_together,
      "config": record,
  }
