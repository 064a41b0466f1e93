"""Models by name. One explicit mapping; an unknown name gets the known ones and the closest."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bottleneck import models, validation


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  build: Callable[..., models.Network]
  image_size: int  # default input side
  num_classes: int  # default number of classes
  description: str


MODELS: dict[str, ModelSpec] = {
    "googlenet": ModelSpec(
        functools.partial(models.GoogLeNet, name="googlenet"), 224, 1000,
        "GoogLeNet as published: conv biases, LRN, no batch norm, 5x5 branches"),
    "googlenet_bn": ModelSpec(
        functools.partial(models.GoogLeNet, batch_norm=True, use_bias=False, lrn=False,
                          branch5_kernel=3, dropout=0.2, name="googlenet_bn"), 224, 1000,
        "torchvision's googlenet: batch norm, no conv bias, 3x3 in the '5x5' branch, no aux"),
    "inception_v3": ModelSpec(
        functools.partial(models.InceptionV3, name="inception_v3"), 299, 1000,
        "Inception-v3 as in Keras (batch norm without scale); aux head optional"),
    "inception_small": ModelSpec(
        functools.partial(models.InceptionSmall, name="inception_small"), 28, 10,
        "Zhang et al. 2017 small Inception for CIFAR-10 (the paper's net is the naive variant)"),
    "flatten_head_cnn": ModelSpec(
        functools.partial(models.FlattenHeadClassifier, name="flatten_head_cnn"), 8, 10,
        "small CNN with a flatten + Dense head (8x8 digits); reduce: a 1x1 before the head"),
}


def get_spec(name: str) -> ModelSpec:
  validation.choice(name, "model", MODELS, "registry")
  return MODELS[name]


# Set by the config's own fields (or by the training loop), not through `model_kwargs`.
_NOT_KWARGS = ("self", "rngs", "name", "reduce", "num_classes", "image_size", "dtype",
               "param_dtype")


def model_arguments(name: str) -> dict[str, type]:
  """The arguments of model `name` that a config's `model_kwargs` may set, with their types
  (from the defaults; `float` for a `float | None` default)."""
  params = inspect.signature(get_spec(name).build.func.__init__).parameters
  out = {}
  for key, p in params.items():
    if key in _NOT_KWARGS:
      continue
    if p.default is None:
      out[key] = float if "float" in str(p.annotation) else int
    else:
      out[key] = type(p.default)
  return out


def all_model_arguments() -> dict[str, type]:
  """`model_arguments` of every registered model, together."""
  out = {}
  for name in MODELS:
    out.update(model_arguments(name))
  return out


def create_model(name: str, *, reduce: bool, num_classes: int | None = None,
                 image_size: int | None = None, rngs: nnx.Rngs | None = None,
                 **overrides) -> models.Network:
  """Builds model `name`; `num_classes` and `image_size` default to the model's own."""
  spec = get_spec(name)
  accepted = inspect.signature(spec.build.func.__init__).parameters
  for key in overrides:
    if key not in accepted:
      valid = [p for p in accepted if p not in ("self", "rngs", "name", "reduce")]
      validation.choice(key, f"argument of model {name!r}", valid, "registry")
  return spec.build(reduce=reduce,
                    num_classes=spec.num_classes if num_classes is None else num_classes,
                    image_size=spec.image_size if image_size is None else image_size,
                    rngs=rngs if rngs is not None else nnx.Rngs(0), **overrides)


def abstract_model(name: str, **kwargs) -> models.Network:
  """The model with shapes but no values (`nnx.eval_shape`): nothing is initialised."""
  return nnx.eval_shape(lambda: create_model(name, **kwargs))


def fill_random(module: nnx.Module, seed: int = 0) -> nnx.Module:
  """`module` (abstract or real) with NumPy-random values: kernels normal / sqrt(fan_in),
  batch-norm scale and variance 1, everything else (biases, means, RNG state) 0. Compiles
  nothing, unlike running the model's initialisers."""
  graphdef, state = nnx.split(module)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    key = [n for n in names if n != "value"][-1]  # the variable's own name, e.g. "kernel"
    if key == "kernel":
      fan_in = math.prod(leaf.shape[:-1])
      return jnp.asarray(rng.normal(size=leaf.shape) / math.sqrt(fan_in), leaf.dtype)
    if key in ("scale", "var"):
      return jnp.ones(leaf.shape, leaf.dtype)
    return jnp.zeros(leaf.shape, leaf.dtype)

  return nnx.merge(graphdef, jax.tree.map_with_path(fill, state))


def random_model(name: str, *, seed: int = 0, **kwargs) -> models.Network:
  """The model with NumPy-random weights (see `fill_random`).

  For benchmarks and tests that need values but not the model's own initialisers: filling the
  abstract model from NumPy compiles nothing, where `create_model` compiles one random op per
  distinct parameter shape (about 10 s for GoogLeNet on a 2-core CPU). Train from
  `create_model`.
  """
  return fill_random(abstract_model(name, **kwargs), seed)
