"""Models by name. One explicit mapping; an unknown name gets the known ones and the closest.

A config describes a model with flat fields: `reduce`, `dtype`, `paths`, and `model_kwargs`
(`reduction_ratio`, `width`, ...). `create_model` turns them into what the networks take: the
reduction fields into one `Reduction`, the conv conventions, precision and paths into one
`ConvStyle`, the rest passed as they are. `model_arguments(name)` lists the `model_kwargs` a
model accepts.
"""

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

from bottleneck.nn import blocks, fc_head, inception, mobilenet, network, nin, resnet, squeezenet
from bottleneck.nn.blocks import ConvStyle
from bottleneck.nn.paths import KINDS, Paths
from bottleneck.util import errors, validation


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  build: Callable[..., network.Network]
  image_size: int  # default input side
  num_classes: int  # default number of classes
  description: str
  # The `model_kwargs` that set fields of the model's Reduction and ConvStyle (the flat names
  # of REDUCTION_ARGS and STYLE_ARGS); the model's own arguments are found from its signature.
  routed: tuple[str, ...] = ("reduction_ratio", "reduction_activation", "reduction_places",
                             "reduction_ratios")
  # Where the model's blocks have a 1x1 reduction (`blocks.PLACES`): reduction_places and
  # reduction_ratios may name only these (tests/nn/test_registry.py checks them against the
  # places the blocks consult).
  places: tuple[str, ...] = ()
  # The values of `reduce` the model has: (False,) for a network without 1x1 reductions to
  # switch (ResNet-18's and -34's basic blocks), which `create_model` then refuses to label
  # reduced.
  variants: tuple[bool, ...] = (True, False)


# Flat config name -> field of `Reduction` / of `ConvStyle`.
REDUCTION_ARGS = {
    "reduction_ratio": "ratio", "reduction_activation": "activation", "reduction_places": "places",
    "reduction_ratios": "ratios"
}
GEOMETRY_ARGS = ("lrn", "branch5_kernel", "pool4_window")  # fields of GoogLeNetGeometry
STYLE_ARGS = {
    "use_bias": "use_bias", "batch_norm": "batch_norm", "bn_use_scale": "bn_use_scale",
    "bn_momentum": "bn_momentum", "avg_pool_count_pad": "avg_pool_count_pad"
}
_ROUTED_TYPES = {
    "lrn": bool, "branch5_kernel": int, "pool4_window": int, "reduction_ratio": float,
    "reduction_activation": bool, "reduction_places": str, "reduction_ratios": str,
    "use_bias": bool, "batch_norm": bool, "bn_use_scale": bool, "avg_pool_count_pad": bool,
    "bn_momentum": float
}

MODELS: dict[str, ModelSpec] = {
    "googlenet": ModelSpec(
        functools.partial(inception.GoogLeNet, name="googlenet"), 224, 1000,
        "GoogLeNet as published: conv biases, LRN, no batch norm, 5x5 branches",
        routed=(*REDUCTION_ARGS, *GEOMETRY_ARGS, "batch_norm", "use_bias", "bn_momentum"),
        places=("3x3", "5x5", "pool")),
    "googlenet_bn": ModelSpec(
        functools.partial(inception.GoogLeNet, style=ConvStyle(batch_norm=True, use_bias=False),
                          geometry=inception.TORCHVISION, dropout=0.2, name="googlenet_bn"), 224,
        1000, "torchvision's googlenet: batch norm, no conv bias, 3x3 in the '5x5' branch, no aux",
        routed=(*REDUCTION_ARGS, *GEOMETRY_ARGS, "batch_norm", "use_bias", "bn_momentum"),
        places=("3x3", "5x5", "pool")),
    "inception_v3": ModelSpec(
        functools.partial(inception.InceptionV3, name="inception_v3"), 299, 1000,
        "Inception-v3 as in Keras (batch norm without scale, average pools without the "
        "padding); aux head optional",
        routed=("reduction_ratio", "reduction_activation", "bn_use_scale", "avg_pool_count_pad",
                "bn_momentum")),
    "inception_small": ModelSpec(
        functools.partial(inception.InceptionSmall, name="inception_small"), 28, 10,
        "Zhang et al. 2017 small Inception for CIFAR-10 (the paper's net is the naive variant)",
        routed=(*REDUCTION_ARGS, "bn_momentum"), places=("3x3",)),
    "resnet18": ModelSpec(
        functools.partial(resnet.ResNet, depth=18, name="resnet18"), 224, 1000,
        "torchvision's resnet18: basic blocks (two 3x3 convs), no 1x1 reduction to switch",
        routed=("bn_momentum",), variants=(False,)),
    "resnet34": ModelSpec(
        functools.partial(resnet.ResNet, depth=34, name="resnet34"), 224, 1000,
        "torchvision's resnet34: basic blocks (two 3x3 convs), no 1x1 reduction to switch",
        routed=("bn_momentum",), variants=(False,)),
    "resnet50": ModelSpec(
        functools.partial(resnet.ResNet, depth=50, name="resnet50"), 224, 1000,
        "torchvision's resnet50: bottleneck blocks (1x1 reduce, 3x3, 1x1 expand); naive: "
        "one 3x3 at full width", routed=(*REDUCTION_ARGS, "bn_momentum"), places=("3x3",)),
    "squeezenet1_0": ModelSpec(
        functools.partial(squeezenet.SqueezeNet, version="1_0"), 224, 1000,
        "torchvision's squeezenet1_0: fire modules (1x1 squeeze, then 1x1 and 3x3 expand); "
        "naive: the expand convs read the input",
        routed=(*REDUCTION_ARGS, "batch_norm", "use_bias", "bn_momentum"), places=("3x3",)),
    "squeezenet1_1": ModelSpec(
        functools.partial(squeezenet.SqueezeNet, version="1_1"), 224, 1000,
        "torchvision's squeezenet1_1 (a 3x3 conv1, earlier pools): fire modules as 1.0's",
        routed=(*REDUCTION_ARGS, "batch_norm", "use_bias", "bn_momentum"), places=("3x3",)),
    "mobilenet_v2": ModelSpec(
        functools.partial(mobilenet.MobileNetV2, name="mobilenet_v2"), 224, 1000,
        "torchvision's mobilenet_v2: inverted residuals (1x1 expand, 3x3 depthwise, linear 1x1 "
        "project); naive: one full 3x3 a block", routed=("reduction_activation", "bn_momentum"),
        places=("3x3",)),
    "nin": ModelSpec(
        functools.partial(nin.NiN, name="nin"), 32, 10,
        "Network in Network's CIFAR-10 net (Lin et al.): mlpconv blocks (k x k conv, then 1x1 "
        "convs), a 1x1 conv to the classes and global average pooling; naive: the k x k convs "
        "alone", routed=("reduction_activation", "batch_norm", "use_bias", "bn_momentum")),
    "flatten_head_cnn": ModelSpec(
        functools.partial(fc_head.FlattenHeadClassifier), 8, 10,
        "small CNN with a flatten + Dense head (8x8 digits); reduce: a 1x1 before the head",
        routed=("reduction_activation", "batch_norm")),
}


def get_spec(name: str) -> ModelSpec:
  validation.choice(name, "model", MODELS, "registry")
  return MODELS[name]


def published_reduce(name: str) -> bool:
  """`reduce` for model `name` as published: True for every network whose 1x1s the switch
  removes (their 1x1s built), False for the basic-block ResNets (`ModelSpec.variants`)."""
  return get_spec(name).variants[0]


# Set by the config's own fields (or by the training loop), not through `model_kwargs`.
_NOT_KWARGS = ("self", "rngs", "name", "num_classes", "image_size", "reduction", "style",
               "geometry", "depth", "version")


def _default(spec: ModelSpec, arg: str):
  """The value `spec.build` gives argument `arg` when the caller does not."""
  if arg in spec.build.keywords:
    return spec.build.keywords[arg]
  return inspect.signature(spec.build.func.__init__).parameters[arg].default


def model_arguments(name: str) -> dict[str, type]:
  """The arguments of model `name` that a config's `model_kwargs` may set, with their types
  (from the defaults; `float` for a `float | None` default)."""
  spec = get_spec(name)
  out = {key: _ROUTED_TYPES[key] for key in spec.routed}
  for key, p in inspect.signature(spec.build.func.__init__).parameters.items():
    if key not in _NOT_KWARGS:
      out[key] = type(p.default)
  return out


def all_model_arguments() -> dict[str, type]:
  """`model_arguments` of every registered model, together."""
  out = {}
  for name in MODELS:
    out.update(model_arguments(name))
  return out


def create_model(name: str, *, reduce: bool, num_classes: int | None = None,
                 image_size: int | None = None, paths: Paths = Paths(), dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs: nnx.Rngs | None = None, abstract: bool = False,
                 **kwargs) -> network.Network:
  """Builds model `name` from flat arguments (a config's): `kwargs` are `model_arguments`.

  `num_classes` and `image_size` default to the model's own; `reduce` and the reduction
  fields of `kwargs` make its `Reduction`, `paths`, `dtype`, `param_dtype` and the style
  fields of `kwargs` its `ConvStyle`. `abstract`: shapes only (`abstract_model`).
  """
  spec = get_spec(name)
  accepted = model_arguments(name)
  for key in kwargs:
    if key in KINDS:
      raise errors.ConfigError(
          f"registry: {key!r} is a path, not an argument of model {name!r}: give it in the "
          f"model's paths (config.paths.{key}, or paths=Paths({key}=...)).")
    validation.choice(key, f"argument of model {name!r}", accepted, "registry")
  if bool(reduce) not in spec.variants:
    raise errors.ConfigError(
        f"registry: model {name!r} has one variant, reduce={spec.variants[0]}: "
        f"{spec.description}.")
  _check_places(name, spec, kwargs)
  reduction = dataclasses.replace(
      _default(spec, "reduction"), enabled=bool(reduce),
      **{REDUCTION_ARGS[k]: v for k, v in kwargs.items() if k in REDUCTION_ARGS})
  style = dataclasses.replace(_default(spec,
                                       "style"), paths=paths, dtype=dtype, param_dtype=param_dtype,
                              **{STYLE_ARGS[k]: v for k, v in kwargs.items() if k in STYLE_ARGS})
  own = {
      k: v
      for k, v in kwargs.items()
      if k not in REDUCTION_ARGS and k not in STYLE_ARGS and k not in GEOMETRY_ARGS
  }
  geometry = {k: v for k, v in kwargs.items() if k in GEOMETRY_ARGS}
  if geometry:
    own["geometry"] = dataclasses.replace(_default(spec, "geometry"), **geometry)
  rngs = rngs if rngs is not None else nnx.Rngs(0)
  init = _initialiser(name, spec.num_classes if num_classes is None else num_classes,
                      spec.image_size if image_size is None else image_size, reduction, style,
                      tuple(sorted(own.items())), nnx.graphdef(rngs))
  return init(rngs, abstract)


def _check_places(name: str, spec: ModelSpec, kwargs: dict) -> None:
  """Refuses reduction places the model does not have: a place it lacks built the naive
  network (or an unchanged one) under a reduced label."""
  named = {}
  if kwargs.get("reduction_places") is not None:
    named["reduction_places"] = blocks.Reduction(places=kwargs["reduction_places"]).places
  if kwargs.get("reduction_ratios") is not None:
    named["reduction_ratios"] = tuple(
        p for p, _ in blocks.Reduction(ratios=kwargs["reduction_ratios"]).ratios)
  for key, places in named.items():
    missing = [p for p in places if p not in spec.places]
    if missing:
      raise errors.ConfigError(
          f"registry: {key}={kwargs[key]!r} names {', '.join(missing)}, where model {name!r} "
          f"has no reduction; its places: {', '.join(spec.places)}.")


# XLA's backend optimisations take most of the initialisers' compile time and buy nothing in a
# program that runs once; its older fusion emitters (LLVM IR, not MLIR) compile faster still
# (docs/ablations.md, "The initialisers compile unoptimised").
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


@functools.cache
def fast_compile_options() -> dict:
  """`FAST_COMPILE` less the options this jax's XLA does not know: an unknown option fails the
  compilation, and XLA drops options over time (jax 0.11's no longer reads the fusion emitters
  flag from XLA_FLAGS). Each option is tried once per process on a scalar program (~25 ms)."""
  known = {}
  for key, value in FAST_COMPILE.items():
    try:
      jax.jit(lambda x: x + 1,
              compiler_options={key: value}).lower(jax.ShapeDtypeStruct((), jnp.float32)).compile()
    except Exception:  # "No such compile option": not in this XLA
      continue
    known[key] = value
  return known


class _Count(np.ndarray):
  """A stream's count while the initialisers are traced (`_initialiser`). Reading it gives a
  copy: JAX keeps a reference to a NumPy constant, and Flax increments the count in place, so
  every draw would otherwise see the last count."""

  def __getitem__(self, index):
    return np.array(super().__getitem__(index))


@functools.lru_cache(maxsize=64)
def _initialiser(name, num_classes, image_size, reduction, style, own, rngs_def):
  """The model's construction, its initialisers compiled as one program, unoptimised
  (`FAST_COMPILE`): run eagerly, each initializer call compiles on its own (about 70 programs),
  and XLA's optimisations are most of one program's compile time, for a program that runs once
  (the times: docs/ablations.md). The values are the eager ones to within a rounding (an
  unoptimised program rounds some products differently; tests/nn/test_registry.py). Cached: a
  second model of the same kind compiles nothing. Returns `init(rngs, abstract)`: the model,
  shapes only if `abstract`; else `rngs` advances as the layers drew from it."""
  build = functools.partial(
      get_spec(name).build, num_classes=num_classes, image_size=image_size, reduction=reduction,
      style=style, **dict(own))
  model_def = []  # the graph of the model, found when the program is traced

  def states(keys, counts):
    rngs = nnx.merge(rngs_def, keys, counts)
    graph, state = nnx.split(build(rngs=rngs))
    if not model_def:
      model_def.append(graph)
    return state, nnx.state(rngs)

  # Each draw from a stream adds one to its count: traced, that update costs Flax a search of
  # everything traced so far (`Variable.set_value` asks the tracer for its sharding, and JAX
  # builds the error message), quadratic in the model's size: most of
  # `complexity.match_width`'s time went there. The counts are static instead: the streams'
  # starting counts are part of the program, NumPy integers while it is traced (`_Count`).
  def states_from(keys, static_counts):
    treedef, values = static_counts
    counts = [np.array(v, d).view(_Count) for v, d in values]
    return states(keys, jax.tree.unflatten(treedef, counts))

  compiled = jax.jit(states_from, static_argnames="static_counts",
                     compiler_options=fast_compile_options())

  def init(rngs, abstract):
    _, keys, counts = nnx.split(rngs, nnx.RngKey, nnx.RngCount)
    leaves, treedef = jax.tree.flatten(counts)
    if any(isinstance(x, jax.core.Tracer) or np.ndim(x) for x in leaves):
      # Inside another transformation (a caller's jit or vmap) the caller compiles; split
      # streams have a count per key.
      program, args = states, (keys, counts)
    else:
      static = (treedef, tuple((int(x), np.asarray(x).dtype.str) for x in leaves))
      program = functools.partial(states_from if abstract else compiled, static_counts=static)
      args = (keys,)
    if abstract:
      state, _ = jax.eval_shape(program, *args)
      return nnx.merge(model_def[0], state)
    state, rngs_after = program(*args)
    nnx.update(rngs, rngs_after)
    return nnx.merge(model_def[0], state)

  return init


def abstract_model(name: str, **kwargs) -> network.Network:
  """The model with shapes but no values (as `nnx.eval_shape` gives): nothing is initialised."""
  return create_model(name, abstract=True, **kwargs)


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


def random_model(name: str, *, seed: int = 0, **kwargs) -> network.Network:
  """The model with NumPy-random weights (see `fill_random`).

  For benchmarks and tests that need values but not the model's own initialisers: filling the
  abstract model from NumPy compiles nothing, where `create_model` compiles one random op per
  distinct parameter shape (seconds for a large network on a CPU). Train from
  `create_model`.
  """
  return fill_random(abstract_model(name, **kwargs), seed)
