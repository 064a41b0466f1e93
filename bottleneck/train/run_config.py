"""The training config: its fields and defaults, and the check of every field before any work.

The fields and their defaults are `bottleneck/train/defaults.py` (`default_config` here is its
`get_config`); `model_kwargs(config)` and `model_paths(config)` are what the model is built
from.

`validate(config)` checks type, range and choice of every field, refuses fields the config does
not know (with the closest known name), and builds the model abstractly (no weights) so that an
impossible model is refused before anything is read or written: one ConfigError listing every
problem.

`record(config)` is what a workdir's `config.json` holds; how two records compare:
`records.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import ml_collections

from bottleneck.measure import complexity
from bottleneck.nn import paths as paths_lib, registry
from bottleneck.nn.paths import KINDS, Paths
from bottleneck.train import defaults as defaults_lib
from bottleneck.util import env, validation
from bottleneck.util.errors import ConfigError, UserError

DTYPES = env.DTYPES
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine", "exponential")
RESIZE = ("pad", "resize")

default_config = defaults_lib.get_config


def model_paths(config) -> Paths:
  """The config's `paths` as one `Paths` value ("auto" where a kind is not given)."""
  return Paths(**{k: v for k, v in dict(config.get("paths", {})).items() if k in KINDS})


def model_kwargs(config) -> dict:
  """The model arguments the config sets (unset ones left out)."""
  return {k: v for k, v in dict(config.get("model_kwargs", {})).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A checked config resolved once (`resolve`), for a dataset of `num_classes` classes: what
  the model is built from (`model_args`: the registry's arguments, the matched width
  included), how its ops are computed (`paths`), and the matching that result.json records."""
  config: ml_collections.ConfigDict
  num_classes: int
  paths: Paths
  model_args: dict
  match: dict | None


def resolve(config, num_classes: int) -> Resolved:
  """The config's model resolved: its arguments, with the width that meets `match_macs` or
  `match_params` when one is set (the same config always finds the same width), and its paths."""
  paths = model_paths(config)
  match = match_record(config, num_classes)
  width = {} if match is None else {"width": match["width"], "width_extra": match["width_extra"]}
  args = dict(reduce=config.reduce, num_classes=num_classes, image_size=config.image_size,
              dtype=DTYPES[config.dtype], paths=paths, **{**model_kwargs(config), **width})
  return Resolved(config, num_classes, paths, args, match)


def match_record(config, num_classes: int) -> dict | None:
  """What result.json says of the matching: metric, budget, width found, its cost."""
  metric = next((m for m in complexity.MATCH_METRICS if config.get(f"match_{m}")), None)
  if metric is None:
    return None
  budget = float(config[f"match_{metric}"])
  kwargs = {k: v for k, v in model_kwargs(config).items() if k not in ("width", "width_extra")}
  found = _match(config.model, metric, budget, bool(config.reduce), int(config.image_size),
                 int(num_classes), model_paths(config), tuple(sorted(kwargs.items())))
  return {
      "metric": metric, "budget": budget,
      **found, "replaced_width": model_kwargs(config).get("width")
  }


@functools.lru_cache(maxsize=32)
def _match(model, metric, budget, reduce, image_size, num_classes, paths, kwargs):
  return complexity.match_width(model, metric=metric, budget=budget, reduce=reduce,
                                image_size=image_size, num_classes=num_classes, paths=paths,
                                **dict(kwargs))


def record(config) -> dict:
  """The config as `config.json` holds it: plain JSON types, unset model arguments left out."""
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  d = json.loads(json.dumps(d, sort_keys=True, default=str))
  if isinstance(d.get("model_kwargs"), dict):
    d["model_kwargs"] = {k: v for k, v in d["model_kwargs"].items() if v is not None}
  return d


def _unknown_fields(config: dict, schema: dict, prefix: str = "") -> list[str]:
  problems = []
  for key, value in config.items():
    if prefix == "model_kwargs.":
      continue  # checked against the model's own arguments
    if key not in schema:
      problems.append(f"the config has no field {prefix + key!r}."
                      f"{validation.closest(key, schema)}")
    elif isinstance(value, dict) and isinstance(schema[key], dict):
      problems += _unknown_fields(value, schema[key], f"{prefix}{key}.")
  return problems


def validate(config) -> None:
  """Raises one ConfigError listing every invalid field of a training config (see module doc)."""
  where = "config"
  c = ml_collections.ConfigDict(record(config))
  problems = _unknown_fields(c.to_dict(), record(default_config()))
  v = validation
  o, d = c.get("optimizer", {}), c.get("data", {})
  checks = [
      lambda: v.choice(c.get("model"), "model", registry.MODELS, where),
      lambda: v.boolean(c.get("reduce"), "reduce", where),
      lambda: v.choice(c.get("dtype"), "dtype", DTYPES, where),
      lambda: v.whole(c.get("image_size"), "image_size", where, 1),
      lambda: v.number(c.get("match_macs"), "match_macs", where, at_least=0),
      lambda: v.whole(c.get("match_params"), "match_params", where, 0),
      lambda: _check_match(c),
      lambda: v.whole(c.get("batch_size"), "batch_size", where, 1),
      lambda: v.whole(c.get("eval_batch_size"), "eval_batch_size", where, 1),
      lambda: v.whole(c.get("num_train_steps"), "num_train_steps", where, 0),
      lambda: c.get("num_train_steps") or v.number(c.get("num_epochs"), "num_epochs", where, above=0
                                                  ),
      lambda: v.whole(c.get("seed"), "seed", where, 0),
      lambda: v.whole(c.get("log_every_steps"), "log_every_steps", where, 1),
      lambda: v.whole(c.get("eval_every_steps"), "eval_every_steps", where, 0),
      lambda: v.number(c.get("eval_every_epochs"), "eval_every_epochs", where, at_least=0),
      lambda: _check_evaluations(c),
      lambda: v.whole(c.get("checkpoint_every_steps"), "checkpoint_every_steps", where, 1),
      lambda: v.whole(c.get("keep_checkpoints"), "keep_checkpoints", where, 1),
      lambda: v.whole(c.get("bn_stats_batches"), "bn_stats_batches", where, 0),
      lambda: _text(c.get("dataset"), "dataset"),
      lambda: _text(c.get("train_split"), "train_split"),
      lambda: _text(c.get("eval_split"), "eval_split"),
      lambda: c.get("data_dir") is None or _text(c.get("data_dir"), "data_dir"),
      lambda: d.get("source_dir") is None or _text(d.get("source_dir"), "data.source_dir"),
      lambda: v.number(d.get("mean"), "data.mean", where),
      lambda: v.number(d.get("std"), "data.std", where, above=0),
      lambda: v.choice(d.get("resize"), "data.resize", RESIZE, where),
      lambda: v.whole(d.get("crop_padding"), "data.crop_padding", where, 0),
      lambda: v.boolean(d.get("flip"), "data.flip", where),
      lambda: v.boolean(d.get("random_crop"), "data.random_crop", where),
      lambda: d.get("in_memory_mb") is None or v.number(d.get("in_memory_mb"), "data.in_memory_mb",
                                                        where, at_least=0),
      lambda: d.get("workers") is None or v.whole(d.get("workers"), "data.workers", where, 0),
      lambda: v.choice(o.get("name"), "optimizer.name", OPTIMIZERS, where),
      lambda: v.number(o.get("learning_rate"), "optimizer.learning_rate", where, above=0),
      lambda: v.number(o.get("momentum"), "optimizer.momentum", where, at_least=0, below=1),
      lambda: v.boolean(o.get("nesterov"), "optimizer.nesterov", where),
      lambda: v.number(o.get("weight_decay"), "optimizer.weight_decay", where, at_least=0),
      lambda: v.choice(o.get("schedule"), "optimizer.schedule", SCHEDULES, where),
      lambda: v.number(o.get("warmup_epochs"), "optimizer.warmup_epochs", where, at_least=0),
      lambda: v.number(o.get("decay_rate"), "optimizer.decay_rate", where, above=0, at_most=1),
  ]
  checks += [
      lambda k=k, val=val: paths_lib.resolve(k, val, where)
      for k, val in c.get("paths", {}).items()
      if k in KINDS
  ]
  for check in checks:
    try:
      check()
    except UserError as e:
      problems.append(str(e).removeprefix(f"{where}: "))
  if not problems:  # the model itself: widths, image size, model arguments
    try:
      registry.abstract_model(c.model, reduce=c.reduce, image_size=c.image_size,
                              paths=model_paths(c), **model_kwargs(c))
    except UserError as e:  # "mobilenet_v2: expansion=..." as the config spells it
      names = "|".join(map(re.escape, model_kwargs(c)))
      problems.append(
          re.sub(rf"(?<![\w.])({names})=", r"model_kwargs.\1=", str(e)) if names else str(e))
    except (TypeError, ValueError) as e:  # a model argument of the wrong type
      problems.append(f"model_kwargs {model_kwargs(c)} do not build {c.model!r}: {e}")
  if problems:
    raise ConfigError(f"{where}: "
                      + " ".join(p if p.endswith((".", "?")) else p + "." for p in problems))


def _check_match(c) -> None:
  """At most one budget, for a model with a width multiplier (a configured width is replaced by
  the one found, and training says so)."""
  given = [m for m in complexity.MATCH_METRICS if c.get(f"match_{m}")]
  if not given:
    return
  if len(given) > 1:
    raise ConfigError("config: match_macs and match_params exclude each other; set one.")
  if "width" not in registry.model_arguments(c.model):
    raise ConfigError(f"config: match_{given[0]} needs a model with a width multiplier; "
                      f"{c.model!r} has none.")


def _check_evaluations(c) -> None:
  """At most one of eval_every_steps and eval_every_epochs; a validation split that is text
  and neither the training nor the test split."""
  if c.get("eval_every_steps") and c.get("eval_every_epochs"):
    raise ConfigError("config: eval_every_steps and eval_every_epochs exclude each other; set "
                      "one.")
  validation = c.get("validation_split")
  if validation is None:
    return
  _text(validation, "validation_split")
  # The same split or slice, a slice of a split used whole ("train[:100]" of "train"), or a
  # whole split of which a slice is used ("train" holding "train[:100]").
  used = {s for s in (c.get("train_split"), c.get("eval_split")) if isinstance(s, str)}
  split_of = lambda s: s.split("[")[0]
  if {validation, split_of(validation)} & used or validation in {split_of(s) for s in used}:
    raise ConfigError(f"config: validation_split={validation!r} is, holds or is part of the "
                      "training or the test split; hold it out of the training images (e.g. "
                      "train_split 'train[:55000]', validation_split 'train[55000:]').")


def _text(value, name: str) -> None:
  if not isinstance(value, str) or not value:
    raise ConfigError(f"config: {name}={value!r} is invalid; it must be a non-empty string.")
