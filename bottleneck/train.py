"""Training and evaluation: `train_and_evaluate(config, workdir)`.

One jit-compiled train step over `nnx.split` state (model and optimizer), the batch sharded over
every local device on a `jax.sharding.Mesh` "data" axis (data parallelism; the state is
replicated). The work directory holds:

- `config.json`: the resolved config; a rerun with a different config is refused.
- `metrics.jsonl`: one JSON object per logged step (`split` "train" or "eval"), and TensorBoard
  events in `tensorboard/`.
- `checkpoints/<step>/`: orbax checkpoints every `checkpoint_every_steps`, the last
  `keep_checkpoints` kept. A rerun resumes from the newest readable one and, since batches are a
  function of (seed, step), ends where an uninterrupted run would.
- `result.json`: the summary, written last; a workdir that has one is not trained again.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from bottleneck import complexity, kernels, registry, validation, workdir as wd
from bottleneck.data import pipeline
from bottleneck.validation import ConfigError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


VARIANTS = ("reduced", "naive")


def variant_config(arg: str) -> ml_collections.ConfigDict:
  """`default_config()` for the named variant: "reduced" (1x1 reductions) or "naive"."""
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r}; valid: {', '.join(VARIANTS)}")
  c = default_config()
  c.reduce = arg == "reduced"
  return c


def default_config() -> ml_collections.ConfigDict:
  """Every field `train_and_evaluate` reads, with defaults; experiment configs override them."""
  c = ml_collections.ConfigDict()
  c.model = "inception_small"
  c.reduce = True
  c.model_kwargs = ml_collections.ConfigDict()  # extra model arguments (width, ...)
  # How the ops are computed (bottleneck.kernels): the same numbers, another speed.
  c.paths = ml_collections.ConfigDict({kind: "auto" for kind in kernels.CHOICES})
  c.dataset = "digits"
  c.data_dir = ml_collections.config_dict.placeholder(str)  # None: TFDS default directory
  c.train_split, c.eval_split = "train", "test"
  c.image_size = 28
  c.data = ml_collections.ConfigDict(dict(mean=0.5, std=0.5, resize="pad", crop_padding=0,
                                          flip=False, random_crop=False))
  c.batch_size = 128
  c.eval_batch_size = 128
  c.num_epochs = 10.0
  c.num_train_steps = 0  # > 0 overrides num_epochs
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.1, momentum=0.9, nesterov=False, weight_decay=0.0,
      schedule="cosine", warmup_epochs=0.0, decay_rate=0.95))
  c.dtype = "float32"
  c.seed = 0
  c.log_every_steps = 50
  c.eval_every_steps = 0  # 0: evaluate at the end only
  c.checkpoint_every_steps = 200
  c.keep_checkpoints = 3
  return c


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite."""


# --- optimizer -------------------------------------------------------------------------------


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int):
  """Learning-rate schedule: "constant", "cosine" (with warm-up) or "exponential" per epoch."""
  o = config.optimizer
  name = validation.choice(o.schedule, "optimizer.schedule",
                           ("constant", "cosine", "exponential"), "config")
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
  name = validation.choice(o.name, "optimizer.name", ("sgd", "adamw"), "config")
  if name == "adamw":
    return optax.adamw(schedule, weight_decay=o.weight_decay)
  sgd = optax.sgd(schedule, momentum=o.momentum or None, nesterov=o.get("nesterov", False))
  return optax.chain(optax.add_decayed_weights(o.weight_decay), sgd) if o.weight_decay else sgd


# --- checkpoints -----------------------------------------------------------------------------


def _is_key(x) -> bool:
  return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(state: nnx.State):
  """Pure nested dicts with PRNG keys as their raw data (orbax stores plain arrays)."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x,
                      state.to_pure_dict())


def _from_storable(template: nnx.State, stored) -> nnx.State:
  pure = template.to_pure_dict()
  pure = jax.tree.map(lambda t, s: jax.random.wrap_key_data(s, impl=jax.random.key_impl(t))
                      if _is_key(t) else s, pure, stored)
  state = jax.tree.map(lambda x: x, template)  # a copy to fill
  nnx.replace_by_pure_dict(state, pure)
  return state


def restore_latest(manager: ocp.CheckpointManager, states: dict[str, nnx.State]):
  """(step, states) from the newest readable checkpoint, or (0, states) if there is none.

  An unreadable checkpoint (corrupt, cut short) is reported and the one before it is tried.
  """
  template = {k: _to_storable(v) for k, v in states.items()}
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      stored = manager.restore(step, args=ocp.args.StandardRestore(template))
    except Exception as e:  # pylint: disable=broad-except  # orbax raises many kinds
      logging.warning("checkpoint at step %d in %s is unreadable (%s: %s); trying the one "
                      "before it", step, manager.directory, type(e).__name__,
                      str(e).splitlines()[0][:200])
      continue
    return step, {k: _from_storable(states[k], stored[k]) for k in states}
  if manager.all_steps():
    logging.warning("no readable checkpoint in %s: starting from scratch", manager.directory)
  return 0, states


# --- progress --------------------------------------------------------------------------------


class Progress:
  """Step, loss, steps/s and ETA: one updating line on a terminal, log lines otherwise."""

  def __init__(self, total_steps: int, start_step: int, every: int):
    self.total, self.every = total_steps, max(1, every)
    self.tty = sys.stderr.isatty()
    self.t0, self.s0 = time.time(), start_step
    self._last_draw = 0.0

  def update(self, step: int, loss: float | None = None, force: bool = False) -> None:
    now = time.time()
    rate = (step - self.s0) / max(now - self.t0, 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    text = (f"step {step}/{self.total}" + (f"  loss {loss:.4f}" if loss is not None else "")
            + f"  {rate:.2f} steps/s  ETA {eta:.0f} s")
    if self.tty:
      if force or now - self._last_draw > 0.2:
        sys.stderr.write("\r" + text.ljust(79))
        sys.stderr.flush()
        self._last_draw = now
    elif force or step % self.every == 0:
      logging.info("%s", text)

  def close(self) -> None:
    if self.tty:
      sys.stderr.write("\n")


# --- the run ---------------------------------------------------------------------------------


def _check_workdir_config(workdir: str, config_dict: dict) -> dict | None:
  """Refuses a workdir whose config.json differs; returns its result.json if finished."""
  path = os.path.join(workdir, wd.CONFIG)
  if os.path.exists(path):
    old, new = wd.read_json(path), _json_roundtrip(config_dict)
    if old != new:
      diff = _dict_diff(old, new)
      raise ConfigError(f"workdir {workdir} holds a run with a different config "
                        f"({'; '.join(diff[:5])}). Use another --workdir, or delete this one.")
  result = os.path.join(workdir, wd.RESULT)
  return wd.read_json(result) if os.path.exists(result) else None


def _json_roundtrip(obj):
  return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _dict_diff(old, new, prefix="") -> list[str]:
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
    if isinstance(a, dict) and isinstance(b, dict):
      out += _dict_diff(a, b, f"{prefix}{k}.")
    elif a != b:
      out.append(f"{prefix}{k}: {a!r} there, {b!r} now")
  return out


def _first_nonfinite(losses: list[tuple[int, jax.Array]]) -> None:
  for step, loss in losses:
    value = float(loss)
    if not math.isfinite(value):
      raise TrainingDiverged(f"loss became {value} at step {step}; no checkpoint was written "
                             "after it. Lower optimizer.learning_rate or check the data.")


def device_description() -> str:
  devices = jax.local_devices()
  kind = devices[0].device_kind
  if devices[0].platform == "cpu":
    kind = f"{platform.processor() or platform.machine()} CPU ({os.cpu_count()} cores)"
  return f"{len(devices)} x {kind}" if len(devices) > 1 else kind


def build_model(config: ml_collections.ConfigDict, num_classes: int):
  """The registry model a config trains, freshly initialised from its seed."""
  dtype = DTYPES[validation.choice(config.dtype, "dtype", DTYPES, "config")]
  return registry.create_model(
      config.model, reduce=config.reduce, num_classes=num_classes,
      image_size=config.image_size, dtype=dtype,
      rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1),
      # model_kwargs may name a path too; it then wins over config.paths
      **{**kernels.module_paths(config.get("paths", {})), **config.get("model_kwargs", {})})


def load_trained_model(workdir: str):
  """(model in eval mode, config, data splits) from a training workdir's newest readable
  checkpoint. Clear errors for a directory that is not a workdir or holds no checkpoint."""
  path = os.path.join(workdir, wd.CONFIG)
  if not os.path.exists(path):
    raise ConfigError(f"{workdir} is not a training workdir: it has no {wd.CONFIG}.")
  config = ml_collections.ConfigDict(wd.read_json(path))
  splits = pipeline.load_splits(config.dataset, (config.train_split, config.eval_split),
                                config.get("data_dir"))
  model = build_model(config, splits[config.train_split].num_classes)
  optimizer = nnx.Optimizer(model, make_optimizer(config, make_schedule(config, 1, 1)),
                            wrt=nnx.Param)
  ckpt_dir = os.path.abspath(os.path.join(workdir, wd.CHECKPOINTS))
  manager = ocp.CheckpointManager(ckpt_dir, options=ocp.CheckpointManagerOptions(create=False)) \
      if os.path.isdir(ckpt_dir) else None
  if manager is None or not manager.all_steps():
    raise ConfigError(f"{workdir} holds no checkpoint: train it first.")
  step, restored = restore_latest(manager, {"model": nnx.state(model),
                                            "optimizer": nnx.state(optimizer)})
  if step == 0:
    raise ConfigError(f"every checkpoint in {ckpt_dir} is unreadable.")
  nnx.update(model, restored["model"])
  model.eval()
  logging.info("loaded %s from the checkpoint at step %d", config.model, step)
  return model, config, splits


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config.model` on `config.dataset`, evaluates it, returns the result.json dict."""
  config_dict = config.to_dict()
  os.makedirs(workdir, exist_ok=True)
  finished = _check_workdir_config(workdir, config_dict)
  if finished is not None:
    logging.info("%s is finished: its result is in %s", workdir,
                 os.path.join(workdir, wd.RESULT))
    print(f"already finished: result in {os.path.join(workdir, wd.RESULT)}", file=sys.stderr)
    return finished

  # Devices and the data-parallel mesh.
  n_dev = jax.device_count()
  for name in ("batch_size", "eval_batch_size"):
    if config[name] % n_dev:
      raise ConfigError(f"{name}={config[name]} is not divisible by the {n_dev} devices; "
                        f"use a multiple of {n_dev}.")
  mesh = jax.make_mesh((n_dev,), ("data",))
  data_sharding, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  logging.info("devices: %s; process %d of %d", jax.devices(), jax.process_index(),
               jax.process_count())

  # Data.
  splits = pipeline.load_splits(config.dataset, (config.train_split, config.eval_split),
                                config.get("data_dir"))
  pipeline.log_split_sizes(splits)
  train_split, eval_split = splits[config.train_split], splits[config.eval_split]

  # Model.
  model = build_model(config, train_split.num_classes)  # validates config.dtype too
  dtype = DTYPES[config.dtype]
  # Compiler options of the jits: which library computes the convolutions (bottleneck.kernels).
  options = kernels.compiler_options(config.get("paths", {}).get("conv_library", "auto"),
                                     "config")
  cost = complexity.analyze_model(model)
  logging.info("model %s (reduce=%s): %s params, %.4g GMACs, %s XLA GFLOPs per image",
               config.model, config.reduce, f"{cost['total']['params']:,}",
               cost["total"]["macs"] / 1e9, cost["total"]["flops_xla"] and
               f"{cost['total']['flops_xla'] / 1e9:.4g}")
  d = config.data
  preprocess = pipeline.Preprocess(config.image_size, model.in_channels, mean=d.mean, std=d.std,
                                   resize=d.resize, crop_padding=d.crop_padding, flip=d.flip,
                                   random_crop=d.random_crop)
  train_batches = pipeline.Batches(train_split, config.batch_size, preprocess, config.seed)
  eval_batches = pipeline.Batches(eval_split, config.eval_batch_size, preprocess, config.seed)
  spe = train_batches.steps_per_epoch
  total_steps = config.num_train_steps if config.get("num_train_steps") else round(
      config.num_epochs * spe)
  schedule = make_schedule(config, spe, total_steps)
  optimizer = nnx.Optimizer(model, make_optimizer(config, schedule), wrt=nnx.Param)
  # Only a config that got this far is recorded: a run refused for bad input leaves no
  # config.json behind to block the corrected rerun in the same workdir.
  if jax.process_index() == 0:
    wd.write_json(os.path.join(workdir, wd.CONFIG), config_dict)

  model.train()
  model_def, model_state = nnx.split(model)
  model.eval()
  eval_def, _ = nnx.split(model)
  opt_def, opt_state = nnx.split(optimizer)

  # Resume.
  manager = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, wd.CHECKPOINTS)),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True))
  start_step, restored = restore_latest(manager, {"model": model_state, "optimizer": opt_state})
  model_state, opt_state = restored["model"], restored["optimizer"]
  metrics_path = os.path.join(workdir, wd.METRICS)
  rows = [r for r in wd.read_jsonl(metrics_path) if r["step"] <= start_step]
  if jax.process_index() == 0:
    wd.truncate_jsonl(metrics_path, rows)  # drop rows logged after the checkpoint we resume
  prior_time = max((r.get("train_time_s", 0.0) for r in rows), default=0.0)
  if start_step:
    logging.info("resuming from the checkpoint at step %d of %d", start_step, total_steps)
  state = jax.device_put((model_state, opt_state), replicated)

  def train_step(state, batch):
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

  def eval_step(model_state, batch):
    model = nnx.merge(eval_def, model_state)
    logits = model(batch["image"].astype(dtype)).astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    correct = jnp.argmax(logits, -1) == batch["label"]
    return {"loss_sum": jnp.sum(loss * batch["mask"]),
            "correct": jnp.sum(correct * batch["mask"]), "count": jnp.sum(batch["mask"])}

  def to_device(batch):
    per_process = len(batch["label"]) // jax.process_count()
    lo = jax.process_index() * per_process
    return {k: jax.make_array_from_process_local_data(data_sharding, v[lo:lo + per_process])
            for k, v in batch.items()}

  t = time.time()
  first = to_device(train_batches.train_batch(start_step))
  train_step_c = jax.jit(train_step, donate_argnums=0, out_shardings=(replicated, replicated),
                         compiler_options=options).lower(state, first).compile()
  compile_time = time.time() - t
  logging.info("train step compiled in %.1f s", compile_time)
  eval_step_j = jax.jit(eval_step, compiler_options=options)

  def evaluate(model_state):
    sums = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for batch in eval_batches.eval_batches():
      out = jax.device_get(eval_step_j(model_state, to_device(batch)))
      sums = {k: sums[k] + float(out[k]) for k in sums}
    return {"loss": sums["loss_sum"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}

  tb = None
  if jax.process_index() == 0:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    tb = SummaryWriter(os.path.join(workdir, wd.TENSORBOARD))
  writer = wd.JsonlWriter(metrics_path) if jax.process_index() == 0 else None

  def log_row(row):
    if writer is None:
      return
    writer.write(row)
    for k, v in row.items():
      if k not in ("step", "split") and isinstance(v, (int, float)):
        tb.add_scalar(f"{row['split']}/{k}", v, row["step"])
    tb.flush()

  progress = Progress(total_steps, start_step, config.log_every_steps)
  pending, window_t, window_steps, train_time = [], time.time(), 0, 0.0
  step = start_step
  try:
    while step < total_steps:
      batch = first if step == start_step else to_device(train_batches.train_batch(step))
      state, metrics = train_step_c(state, batch)
      step += 1
      pending.append((step, metrics))
      window_steps += 1
      log_now = step % config.log_every_steps == 0 or step == total_steps
      ckpt_now = step % config.checkpoint_every_steps == 0 or step == total_steps
      if log_now or ckpt_now:
        jax.block_until_ready(state)
        _first_nonfinite([(s, m["loss"]) for s, m in pending])
        elapsed = time.time() - window_t
        train_time += elapsed  # wall time of training steps and their data, not eval or saving
        last = jax.device_get(pending[-1][1])
        progress.update(step, float(last["loss"]), force=True)
        if log_now:
          log_row({"step": step, "split": "train", "loss": float(last["loss"]),
                   "accuracy": float(last["accuracy"]),
                   "learning_rate": float(schedule(step - 1)),
                   "steps_per_s": window_steps / elapsed,
                   "examples_per_s": window_steps * config.batch_size / elapsed,
                   "train_time_s": prior_time + train_time})
        if config.eval_every_steps and step % config.eval_every_steps == 0 \
            and step != total_steps:
          log_row({"step": step, "split": "eval", **evaluate(state[0])})
        if ckpt_now:
          manager.save(step, args=ocp.args.StandardSave(
              {"model": _to_storable(state[0]), "optimizer": _to_storable(state[1])}))
        pending, window_t, window_steps = [], time.time(), 0
      else:
        progress.update(step)
    manager.wait_until_finished()
    progress.close()
    final = evaluate(state[0])
    log_row({"step": step, "split": "eval", **final})
  finally:
    if writer is not None:
      writer.close()
      tb.close()
  train_time_s = prior_time + train_time
  result = {
      "model": config.model, "reduce": bool(config.reduce), "dataset": config.dataset,
      "params": cost["total"]["params"], "macs": cost["total"]["macs"],
      "flops_xla": cost["total"]["flops_xla"], "eval_accuracy": final["accuracy"],
      "eval_loss": final["loss"], "train_steps": step, "train_time_s": train_time_s,
      "compile_time_s": compile_time,
      "examples_per_s": (step - start_step) * config.batch_size / max(train_time, 1e-9),
      "device": device_description(), "jax_version": jax.__version__, "seed": config.seed,
      "paths": {k: kernels.resolve(k, v, "config") for k, v in config.get("paths", {}).items()},
      "config": config_dict,
  }
  if jax.process_index() == 0:
    wd.write_json(os.path.join(workdir, wd.RESULT), result)
  logging.info("eval accuracy %.4f, loss %.4f after %d steps; result in %s", final["accuracy"],
               final["loss"], step, os.path.join(workdir, wd.RESULT))
  return result
