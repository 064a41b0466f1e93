"""Accuracy of a saved model (a training workdir or imported weights) on a dataset split, with
the preprocessing the model expects.

The preprocessing is the model's own (`bottleneck.train.saved_models.Trained.preprocess`): a
training run's config, or for imported weights the reference's (torchvision: resize 256, centre crop
224, for Inception-v3 342 and 299; Keras: [-1, 1] at 299, the central 87.5%). Labels: a
dataset with as many classes as the model is taken as is; an ImageNet-1k model also reads any
dataset whose classes are ImageNet synsets (`imagenette`, `imagewang`, ...), its labels mapped
to ImageNet's class indices (TFDS's `imagenet2012` label list, which ships with TFDS). Then
top-1 and top-5 are over all 1000 classes, and `top1_among_dataset_classes` picks among the
dataset's own classes only.

The result is printed and written atomically to `DIR/evaluation/<dataset>-<split>.json`.
"""

from __future__ import annotations

import functools
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from bottleneck.data import pipeline
from bottleneck.train import saved_models, steps
from bottleneck.util import env, workdir as wd
from bottleneck.util.errors import ConfigError

EVALUATION = "evaluation"
_SYNSET = re.compile(r"^n\d{8}$")


def imagenet_synsets() -> list[str]:
  """ImageNet-1k's 1000 synsets (WordNet IDs) in class-index order, as TFDS lists them."""
  import tensorflow_datasets as tfds
  path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


def label_map(dataset: str, names: list[str] | None, dataset_classes: int,
              model_classes: int) -> np.ndarray | None:
  """dataset label -> model class, or None when they are the same (see the module doc)."""
  if dataset_classes == model_classes:
    return None
  if model_classes == 1000 and names and all(_SYNSET.match(n) for n in names):
    synsets = imagenet_synsets()
    index = {s: i for i, s in enumerate(synsets)}
    unknown = [n for n in names if n not in index]
    if not unknown:
      return np.asarray([index[n] for n in names], np.int32)
  raise ConfigError(f"dataset {dataset!r} has {dataset_classes} classes and the model "
                    f"{model_classes}; they must be equal, or the model ImageNet-1k's and the "
                    "dataset's classes ImageNet synsets (imagenette, imagewang, ...).")


class _First:
  """The first `n` examples of a data source."""

  def __init__(self, source, n: int):
    self.source, self.n = source, min(n, len(source))

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    if not 0 <= i < self.n:
      raise IndexError(i)
    return self.source[i]


def _eval_step(model_def, mapping, allowed, state, batch) -> dict:
  """`steps.eval_step` of a saved model, its labels mapped to the model's classes (`mapping`,
  or None), with the top-5 hits and, given `allowed` (0 for the dataset's classes, -inf
  elsewhere), the top-1 hits among the dataset's classes."""
  logits = nnx.merge(model_def, state)(batch["image"]).astype(jnp.float32)
  target = batch["label"] if mapping is None else jnp.take(mapping, batch["label"])
  mask = batch["mask"]
  _, top = jax.lax.top_k(logits, min(5, logits.shape[-1]))  # ties: the lower class first
  predicted = top[:, 0]
  out = {
      "loss_sum": jnp.sum(steps.cross_entropy(logits, target) * mask), "correct": jnp.sum(
          (predicted == target) * mask), "count": jnp.sum(mask),
      "top5": jnp.sum(jnp.any(top == target[:, None], axis=-1) * mask)
  }
  if allowed is not None:
    out["among"] = jnp.sum((jnp.argmax(logits + allowed, -1) == target) * mask)
  return {**out, "predicted": predicted}


def _progress(n: int):
  """A `steps.evaluate` progress callback that logs the examples seen and top-1 so far, every
  10 s and at the end."""
  t0, last = time.time(), [0.0]

  def log(sums):
    seen = int(sums["count"][0])
    if time.time() - last[0] > 10 or seen == n:
      rate = seen / max(time.time() - t0, 1e-9)
      logging.info("%d/%d examples, top-1 %.2f%%, %.1f examples/s, ETA %.0f s", seen, n,
                   100 * sums["correct"][0] / seen, rate, (n - seen) / rate)
      last[0] = time.time()

  return log


def evaluate(directory: str, *, dataset: str | None = None, split: str | None = None,
             batch_size: int = 64, max_examples: int | None = None, data_dir: str | None = None,
             source_dir: str | None = None) -> dict:
  """Evaluates the model saved in `directory` on `dataset`'s `split` (defaults: a training
  run's own evaluation split; `imagenet2012` validation for imported weights). `source_dir`:
  where the original files of a dataset read from them are (`bottleneck.data.idx`); default:
  the training run's own, for its own dataset."""
  if batch_size < 1:
    raise ConfigError(f"--batch_size={batch_size} is invalid; it must be at least 1.")
  if max_examples is not None and max_examples < 1:
    raise ConfigError(f"--max_examples={max_examples} is invalid; it must be at least 1.")
  out_dir = os.path.join(directory, EVALUATION)
  loaded = saved_models.load(directory)
  config = loaded.config
  dataset = dataset or config.dataset
  split = split or config.eval_split
  same = dataset == config.dataset
  data_dir = data_dir or (config.get("data_dir") if same else None)
  source_dir = source_dir or (config.get("data", {}).get("source_dir") if same else None)
  source = pipeline.load_splits(dataset, (split,), data_dir, source_dir)[split]
  mapping = label_map(dataset, source.label_names, source.num_classes, loaded.model.num_classes)
  in_split = len(source)
  if max_examples:
    source = pipeline.Split(source.name, _First(source.source, max_examples), source.num_classes,
                            source.label_names)
  wd.ensure_writable(out_dir, "the evaluation directory")
  preprocess = loaded.preprocess
  batches = pipeline.Batches(source, min(batch_size, len(source)), preprocess, seed=0)
  model_def, state = nnx.split(loaded.model)
  allowed = None if mapping is None else np.full(loaded.model.num_classes, -np.inf, np.float32)
  if allowed is not None:
    allowed[mapping] = 0.0
  step = jax.jit(functools.partial(_eval_step, model_def, mapping, allowed))
  n, t0 = len(source), time.time()
  logging.info("evaluating %s on %s/%s: %d examples, preprocessing %s", directory, dataset, split,
               n, preprocess)
  sharding = NamedSharding(Mesh(np.asarray(jax.devices()[:1]), ("data",)), P("data"))
  final = steps.evaluate(step, state, batches, sharding, progress=_progress(n))[0]
  seen = len(final["label"])
  result = {
      "workdir": directory,
      "model": config.model,
      "checkpoint_step": loaded.step,
      "imported": loaded.imported and {k: loaded.imported[k] for k in ("source", "weights")},
      "dataset": dataset,
      "split": split,
      "examples": seen,
      "examples_in_split": in_split,
      "top1": final["accuracy"],
      "top5": final["top5"],
      "top1_among_dataset_classes": final.get("among"),
      "preprocess": {
          k: getattr(preprocess, k) for k in ("image_size", "resize", "resize_to", "mean", "std")
      },
      "published_top1": (loaded.imported or {}).get("published_top1"),
      "time_s": round(time.time() - t0, 2),
      "device": env.device_description(),
  }
  name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}-{split}")
  wd.write_json(os.path.join(out_dir, f"{name}.json"), result)
  return result


def format_text(result: dict) -> str:
  lines = [
      f"{result['model']} ({result['workdir']}, step {result['checkpoint_step']}) on "
      f"{result['dataset']}/{result['split']}: {result['examples']} of "
      f"{result['examples_in_split']} examples",
      f"top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%"
  ]
  if result["top1_among_dataset_classes"] is not None:
    lines.append(f"top-1 among the dataset's own classes: "
                 f"{100 * result['top1_among_dataset_classes']:.2f}%")
  if result["published_top1"] is not None:
    lines.append(f"published top-1 of these weights on ImageNet validation: "
                 f"{result['published_top1']}%")
  return "\n".join(lines)
