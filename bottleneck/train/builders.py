"""What a training config builds: the model (`build_model`), the learning-rate schedule
(`make_schedule`) and the optimizer (`make_optimizer`). Training (`bottleneck.train.loop`) and
loading a saved model (`bottleneck.train.saved_models`) both build from here; loading imports no
training loop."""

from __future__ import annotations

import ml_collections
import optax
from flax import nnx

from bottleneck.nn import registry
from bottleneck.train import run_config
from bottleneck.util import env
from bottleneck.util.errors import ConfigError

DTYPES = env.DTYPES


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int):
  """Learning-rate schedule: "constant", "cosine" (with warm-up) or "exponential" per epoch."""
  o = config.optimizer  # checked by `run_config.validate`
  name, lr = o.schedule, o.learning_rate
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "cosine":
    warmup = round(o.get("warmup_epochs", 0) * steps_per_epoch)
    if warmup >= total_steps > 0:  # optax's cosine would have no steps left to decay over
      raise ConfigError(
          f"config: optimizer.warmup_epochs={o.warmup_epochs} is {warmup} steps ({steps_per_epoch} "
          f"per epoch), not fewer than the run's {total_steps}; lower it (0: no warm-up) or train "
          "longer.")
    if warmup > 0:
      return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, 1), end_value=0.0)
    return optax.cosine_decay_schedule(lr, max(total_steps, 1))
  if name == "exponential":  # Zhang et al.: lr * decay_rate ** epoch, changed once per epoch
    return optax.exponential_decay(lr, transition_steps=steps_per_epoch, decay_rate=o.decay_rate,
                                   staircase=True)
  raise ValueError(f"optimizer.schedule={name!r}: run_config.validate refuses it")


def make_optimizer(config, schedule) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum, or AdamW; `weight_decay` is L2 added to the gradient for SGD
  and decoupled for AdamW."""
  o = config.optimizer  # checked by `run_config.validate`
  if o.name == "adamw":
    return optax.adamw(schedule, weight_decay=o.weight_decay)
  if o.name != "sgd":
    raise ValueError(f"optimizer.name={o.name!r}: run_config.validate refuses it")
  sgd = optax.sgd(schedule, momentum=o.momentum or None, nesterov=o.get("nesterov", False))
  return optax.chain(optax.add_decayed_weights(o.weight_decay), sgd) if o.weight_decay else sgd


def build_model(config: ml_collections.ConfigDict, num_classes: int, *, initialise: bool = True):
  """The registry model a config trains, freshly initialised from its seed; with
  `initialise=False` only its structure, with placeholder values (`registry.fill_random`), for
  a caller that overwrites every value (restoring a checkpoint): the initialisers' compilation
  is skipped."""
  return model_from(run_config.resolve(config, num_classes), config.seed, initialise=initialise)


def model_from(resolved: run_config.Resolved, seed: int, *, initialise: bool = True):
  """`build_model` of a config already resolved, initialised from `seed`."""
  name, args = resolved.config.model, resolved.model_args
  if not initialise:
    return registry.fill_random(registry.abstract_model(name, **args))
  return registry.create_model(name, rngs=nnx.Rngs(params=seed, dropout=seed + 1), **args)
