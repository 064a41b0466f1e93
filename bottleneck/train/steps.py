"""What one training program computes, step by step: the train step, the evaluation step, batch
norm's statistics, and how runs share a program (`Together`: one run, or seeds stacked and
`jax.vmap`-ed) and the devices (a "data" mesh axis: the batch sharded, the state replicated).
The loop (`loop.py`) binds and jits them (docs/training.md)."""

from __future__ import annotations

import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from bottleneck.nn import layers
from bottleneck.util import env
from bottleneck.util.errors import ConfigError


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy per example, picking each label's log-probability by a one-hot
  product, not a gather (optax's integer-label version): the same function, to a rounding,
  and no gather for the batch sharding to resolve, which JAX refuses for a batch of 1 on an
  explicit mesh."""
  return optax.softmax_cross_entropy(logits,
                                     jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype))


def images(batch: dict, dtype, pixels: np.ndarray | None = None) -> jax.Array:
  """The batch's images as the model takes them, in `dtype`. uint8 images (the training loop's,
  normalised on the device: `pipeline.Preprocess(normalise=False)`) are looked up in `pixels`,
  their `Preprocess.pixel_table`: a gather, which gives the host's numbers on every backend.
  Images already normalised are taken as they are."""
  x = batch["image"]
  if x.dtype == jnp.uint8:
    if pixels is None:
      raise ValueError("a batch of uint8 images needs its normalisation: the step's `pixels`, "
                       "pipeline.Preprocess.pixel_table()")
    channels = pixels.shape[-1]
    flat = x.astype(jnp.int32) * channels + jnp.arange(channels)
    # Where the batch is sharded over an explicit mesh, the gather's output is sharded the same.
    x = jnp.asarray(pixels.reshape(-1)).at[flat].get(out_sharding=jax.typeof(flat).sharding)
  return x.astype(dtype)


def train_step(model_def, opt_def, dtype, state, batch, pixels=None):
  """One SGD step on (model state, optimizer state); bind the graphdefs, dtype and `pixels`
  (`images`) with `functools.partial`, then jit. Returns the new state and the batch's loss and
  accuracy."""
  model = nnx.merge(model_def, state[0])
  optimizer = nnx.merge(opt_def, state[1])
  x = images(batch, dtype, pixels)

  def loss_fn(model):
    logits = model(x).astype(jnp.float32)
    loss = cross_entropy(logits, batch["label"]).mean()
    return loss, logits

  (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return (nnx.state(model), nnx.state(optimizer)), {"loss": loss, "accuracy": accuracy}


def eval_step(eval_def, dtype, model_state, batch, pixels=None):
  """Sums of loss and correct predictions over a batch's unmasked examples, and every
  example's predicted class (eval mode)."""
  model = nnx.merge(eval_def, model_state)
  logits = model(images(batch, dtype, pixels)).astype(jnp.float32)
  loss = cross_entropy(logits, batch["label"])
  predicted = jnp.argmax(logits, -1)
  correct = predicted == batch["label"]
  return {
      "loss_sum": jnp.sum(loss * batch["mask"]), "correct": jnp.sum(correct * batch["mask"]),
      "count": jnp.sum(batch["mask"]), "predicted": predicted
  }


def batch_norm_stats(model_def, dtype, model_state, batch,
                     pixels=None) -> list[tuple[jax.Array, jax.Array]]:
  """Each batch-norm layer's mean and variance over `batch`, as training computes them
  (`model_def`: the model in training mode): the running statistics are zeroed, one forward
  pass moves them by (1 - momentum) x the batch's, and that is divided out again."""
  model = nnx.merge(model_def, model_state)
  norms = layers.batch_norms(model)
  for m in norms:
    m.mean[...] = jnp.zeros_like(m.mean[...])
    m.var[...] = jnp.zeros_like(m.var[...])
  model(images(batch, dtype, pixels))
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
    stats = fetch(stats_fn(model_state, batch))
    terms = [(np.asarray(m, np.float64),
              np.asarray(v, np.float64) + np.square(np.asarray(m, np.float64))) for m, v in stats]
    sums = terms if sums is None else [(a + m, b + v) for (a, b), (m, v) in zip(sums, terms)]
  if sums is None:
    return model_state
  means = [(a / n, b / n - np.square(a / n)) for a, b in sums]
  return set_fn(model_state, [(m, np.maximum(v, 0.0)) for m, v in means])


class SeedsApart(RuntimeError):
  """Seeds given to `train_seeds` that cannot go on as one program (their checkpoints are at
  different steps, or one of them diverged): train each alone (`train_and_evaluate`), which
  resumes from the checkpoints already written."""


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


def replicate(tree, sharding: NamedSharding):
  """`tree` (every process holds all of it) as arrays placed by `sharding` (replicated): a
  `device_put` in one process; on several, each process gives its own devices' copies."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: _replicated(x, sharding), tree)


def _replicated(x, sharding: NamedSharding) -> jax.Array:
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):  # a dropout stream's key: its data, placed
    data = _replicated(jax.random.key_data(x), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  host = np.asarray(x)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def fetch(tree):
  """`jax.device_get` of `tree`, whose arrays may span other processes' devices: a replicated
  one is read from this process's copy."""
  return jax.device_get(
      jax.tree.map(
          lambda x: x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable
          and x.is_fully_replicated else x, tree))


def agreed_signal(pressed: str | None) -> str | None:
  """The signal that stops the run at this step: this process's, or with several processes
  any process's (a scheduler's SIGTERM reaches them at different steps; one that stopped
  alone would leave the others waiting in the next step's collectives)."""
  if jax.process_count() == 1:
    return pressed
  mine = np.int32(signal.Signals[pressed].value if pressed else 0)
  every = np.ravel(multihost_utils.process_allgather(mine))  # every process takes part
  return pressed or next((signal.Signals(int(v)).name for v in every if v), None)


def to_device(batch: dict, sharding: NamedSharding) -> dict:
  """This process's part of a global batch (`pipeline.Batches` with this process's `part`:
  all of it in one process), as arrays sharded over the batch axis (the axis `sharding` names
  "data") of the global batch."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def _every_process(tree: dict) -> dict:
  """Host arrays of this process's part of a batch, each joined with the other processes' parts
  in process order (one gather; in one process, themselves)."""
  return tree if jax.process_count() == 1 else jax.tree.map(
      np.asarray, multihost_utils.process_allgather(tree, tiled=True))


# What an evaluation step's per-example sums are called once divided by the examples counted;
# any other sum keeps its name ("top5": the fraction of examples whose label is among the top 5).
MEANS = {"loss_sum": "loss", "correct": "accuracy"}


def evaluate(eval_step_fn, model_state, batches, sharding, n: int = 1, progress=None) -> list[dict]:
  """Every batch of an evaluation split through `eval_step_fn`, one dict per run (`n` runs
  stacked in `model_state`): each of the step's sums over the unmasked examples divided by their
  "count" (`MEANS` names them: "loss", "accuracy", ...), each run's predicted class of every
  example and the labels ("predicted", "label": arrays in the split's order). `progress`, if
  given, is called after each batch with the sums so far."""
  sums = None
  predicted, labels = [[] for _ in range(n)], []
  for batch in batches.eval_batches():
    out = eval_step_fn(model_state, to_device(batch, sharding))
    # Each example's prediction; on several hosts, each holds a slice of the batch.
    every = (out["predicted"] if out["predicted"].is_fully_addressable else
             multihost_utils.process_allgather(out["predicted"], tiled=True))
    out = fetch({**out, "predicted": every})
    batch_sums = {
        k: np.asarray(v, np.float64).reshape(n) for k, v in out.items() if k != "predicted"
    }
    sums = batch_sums if sums is None else {k: sums[k] + batch_sums[k] for k in sums}
    every_part = _every_process({k: np.asarray(batch[k]) for k in ("mask", "label")})
    keep = every_part["mask"] > 0
    labels.append(every_part["label"][keep])
    for i, p in enumerate(np.asarray(out["predicted"]).reshape(n, -1)):
      predicted[i].append(p[keep])
    if progress is not None:
      progress(sums)
  if sums is None:
    raise ValueError("the evaluation split has no batches")
  return [{
      **{
          MEANS.get(k, k): float(v[i] / sums["count"][i]) for k, v in sums.items() if k != "count"
      }, "predicted": np.concatenate(predicted[i]), "label": np.concatenate(labels)
  } for i in range(n)]


def scalars(row: dict) -> dict:
  """An evaluation's row without its per-example arrays (what metrics.jsonl holds)."""
  return {k: v for k, v in row.items() if k not in ("predicted", "label")}
