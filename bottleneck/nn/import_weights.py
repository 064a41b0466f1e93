"""Weights from another framework into our networks, checked tensor by tensor.

- `from_torchvision(model, state_dict)` loads a torchvision `googlenet` (into `googlenet_bn`) or
  `inception_v3` (into `inception_v3` built with torchvision's style, `SOURCES`) state dict.
- `from_keras(model, keras_model)` loads Keras's `keras.applications.InceptionV3` into our
  default `inception_v3` (Keras's style: batch norm without a learned scale, padded average
  pools divided by their real taps); `keras_inception_v3` builds one (random, Keras's ImageNet
  weights, or a `.weights.h5` file), on Keras 3's JAX backend unless chosen otherwise.

Both references define their layers in the order ours does (Keras's `model.layers` is in
graph order, so its layers are taken in the order its code creates them, which their names
count), so the loader walks the two in step: each conv unit takes one conv and its batch
norm (torchvision's OIHW kernels become HWIO; Keras's are HWIO already), the head takes the
classifier (torchvision's (out, in) transposed). Every tensor must be used exactly once and
fit the shape it lands in; the first that does not is named in a ConfigError. torchvision's
auxiliary heads (`aux1`, `aux2`, `AuxLogits`) are skipped unless the model builds one.

torchvision's model definitions come through `compat.torchvision_models()` (PyPI's CUDA
build of torchvision cannot be imported beside a CPU-only torch).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bottleneck.nn import blocks, layers, mobilenet, network, resnet
from bottleneck.util import compat
from bottleneck.util.errors import ConfigError

_AUX = ("aux1.", "aux2.", "AuxLogits.")


def _forward_order(module):
  """Our conv units and the classifier head, in the order the network applies them."""
  if isinstance(module, (layers.ConvUnit, layers.ClassifierHead)):
    yield module
  elif isinstance(module, network.Network):
    for name, stage in module.named_stages():
      yield from _forward_order(stage)
      for after, _, head in module.side_heads():
        if after == name:
          yield from _forward_order(head)
  elif isinstance(module, resnet.Residual):
    yield from module.units()
  elif isinstance(module, layers.ConvClassifier):
    yield module.conv
  elif isinstance(module, mobilenet.InvertedResidual):
    yield from _forward_order(module.body)
  elif isinstance(module, blocks.InceptionBase):
    yield from _forward_order(module.body)
  elif isinstance(module, blocks.Concat):
    for branch in module.branches:
      yield from _forward_order(branch)
  elif isinstance(module, nnx.Sequential):
    for layer in module.layers:
      yield from _forward_order(layer)


# A conv unit's tensors in torchvision: `conv.weight` and `bn.weight` under the unit's module
# (GoogLeNet's and Inception-v3's BasicConv2d), or `conv1.weight` and `bn1.weight` side by side
# (ResNet's blocks and stem), or `downsample.0` and `downsample.1` (ResNet's projections), or a
# conv alone, `weight` and `bias` of a 4-d kernel (SqueezeNet's), or a bias-free conv and its
# batch norm as numbered siblings (MobileNetV2's).
_UNIT_PART = re.compile(r"(conv|bn)(\d*)")


def _torchvision_groups(state_dict, skip_aux: bool) -> list[tuple[str, dict]]:
  """The state dict's tensors grouped per layer, in order: (layer, {leaf: (key, array)}), a
  conv unit's leaves named `conv.weight`, `bn.running_mean`, ... (`_UNIT_PART`), a Linear's
  `weight` and `bias`."""
  groups: dict[str, dict] = {}
  for key, value in state_dict.items():
    if skip_aux and key.startswith(_AUX):
      continue
    *path, leaf = key.split(".")
    unit = _UNIT_PART.fullmatch(path[-1]) if path else None
    if unit:
      layer, leaf = ".".join(path[:-1] + [f"conv{unit[2]}"] * bool(unit[2])), f"{unit[1]}.{leaf}"
    elif len(path) >= 2 and path[-2] == "downsample" and path[-1] in ("0", "1"):
      layer, leaf = ".".join(path[:-1]), ("conv." if path[-1] == "0" else "bn.") + leaf
    else:
      layer = ".".join(path)
    groups.setdefault(layer, {})[leaf] = (
        key, np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value))
  out = []
  for layer, tensors in groups.items():
    conv = set(tensors) <= {"weight", "bias"} and np.ndim(tensors.get("weight", (0, 0))[1]) == 4
    if "running_mean" in tensors and out and set(out[-1][1]) == {"conv.weight"}:
      # A batch norm after a conv without bias, as siblings (MobileNetV2's `features.0.0` and
      # `features.0.1`): one unit.
      out[-1][1].update({f"bn.{leaf}": v for leaf, v in tensors.items()})
    elif conv:  # a conv, with its batch norm next or alone (SqueezeNet's)
      out.append((layer, {f"conv.{leaf}": v for leaf, v in tensors.items()}))
    else:
      out.append((layer, tensors))
  return out


def _missing_key(layer: str, leaf: str, tensors: dict) -> str:
  """The source's name for a missing tensor: a sibling's key with its last part replaced
  (`layer1.0.bn1.running_var` from `layer1.0.bn1.weight`), else `layer.leaf`."""
  kind, _, name = leaf.rpartition(".")
  for other, (key, _) in tensors.items():
    other_kind, _, other_name = other.rpartition(".")
    if other_kind == kind and key.endswith("." + other_name):
      return key[:-len(other_name)] + name
  return f"{layer}.{leaf}"


# Our layout -> torchvision's: conv kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in).
_OIHW, _OUT_IN = (3, 2, 0, 1), (1, 0)


@dataclasses.dataclass(frozen=True)
class _Layer:
  """What a framework calls a layer's kernel and bias, and the order of the kernel's axes
  against ours (None: the same)."""
  kernel: str
  bias: str
  order: tuple | None = None


@dataclasses.dataclass(frozen=True)
class _Names:
  """What a framework calls each tensor of a conv unit (its `conv`, and batch norm's scale,
  offset, mean and variance) and of the classifier (`dense`); `ignored`: tensors of its own
  that have no place in ours."""
  conv: _Layer
  scale: str
  offset: str
  mean: str
  var: str
  dense: _Layer
  ignored: tuple = ()


_TORCHVISION = _Names(_Layer("conv.weight", "conv.bias", _OIHW), "bn.weight",
                      "bn.bias", "bn.running_mean", "bn.running_var",
                      _Layer("weight", "bias", _OUT_IN), ignored=("bn.num_batches_tracked",))
_KERAS = _Names(_Layer("kernel", "bias"), "gamma", "beta", "moving_mean", "moving_variance",
                _Layer("kernel", "bias"))


def _put(variable, value, key: str, where: str, order=None):
  """`value` (the source's layout) into `variable` (ours), `order` giving ours -> theirs."""
  needed = tuple(variable.shape) if order is None else tuple(variable.shape[i] for i in order)
  if tuple(value.shape) != needed:
    raise ConfigError(f"{where}: tensor {key!r} has shape {tuple(value.shape)}; the layer it "
                      f"loads into needs {needed}.")
  if order is not None:
    value = value.transpose(np.argsort(order))
  variable[...] = jnp.asarray(value, variable.dtype)


def _load(model: network.Network, groups: list[tuple[str, dict]], names: _Names, where: str,
          source: str):
  """Loads `groups` ((layer, {leaf: (key, array)}), in forward order) into `model`'s conv
  units and head: every tensor used once, every shape checked."""
  targets = list(_forward_order(model))
  if len(groups) > len(targets):
    layer, tensors = groups[len(targets)]
    raise ConfigError(f"{where}: tensor {next(iter(tensors.values()))[0]!r} has no place in "
                      f"{model.name} (all its {len(targets)} layers are taken before it).")
  if len(groups) < len(targets):
    raise ConfigError(f"{where}: the {source} ends after {len(groups)} layers; {model.name} "
                      f"has {len(targets)} (the tensors of its layer {len(groups) + 1} are "
                      "missing).")
  for (layer, tensors), target in zip(groups, targets):
    used = set(names.ignored)

    def take(leaf, variable, order=None, layer=layer, tensors=tensors, used=used):
      if leaf not in tensors:
        raise ConfigError(f"{where}: tensor {_missing_key(layer, leaf, tensors)!r} is missing.")
      used.add(leaf)
      _put(variable, tensors[leaf][1], tensors[leaf][0], where, order)

    if isinstance(target, layers.ClassifierHead):
      take(names.dense.kernel, target.dense.kernel, names.dense.order)
      take(names.dense.bias, target.dense.bias)
    else:
      take(names.conv.kernel, target.conv.kernel, names.conv.order)
      if target.conv.bias is not None:
        take(names.conv.bias, target.conv.bias)
      norm = target.norm
      if norm is not None:
        if norm.scale is not None:
          take(names.scale, norm.scale)
        elif names.scale in tensors:
          raise ConfigError(f"{where}: {model.name} has batch norm without a learned scale "
                            f"and the {source} has one ({tensors[names.scale][0]!r}); build "
                            "it with bn_use_scale=True to take these weights.")
        take(names.offset, norm.bias)
        take(names.mean, norm.mean)
        take(names.var, norm.var)
    extra = sorted(set(tensors) - used)
    if extra:
      raise ConfigError(f"{where}: tensor {tensors[extra[0]][0]!r} has no place in "
                        f"{model.name}.")
  return model


def from_torchvision(model: network.Network, state_dict) -> network.Network:
  """`model` with the weights of torchvision's state dict (see the module docstring)."""
  groups = _torchvision_groups(state_dict, skip_aux=not model.side_heads())
  return _load(model, groups, _TORCHVISION, f"{model.name} from torchvision", "state dict")


def _creation_index(layer) -> int:
  """Keras names a model's layers `conv2d`, `conv2d_1`, ... in the order it creates them."""
  tail = layer.name.rsplit("_", 1)
  return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def _keras_groups(keras_model) -> list[tuple[str, dict]]:
  """A Keras Inception-v3's conv + batch-norm pairs and its classifier, in the order the
  network's code creates them (which is ours; `model.layers` is in graph order)."""
  by_kind: dict[str, list] = {}
  for layer in keras_model.layers:
    if layer.weights:
      by_kind.setdefault(type(layer).__name__, []).append(layer)
  unknown = sorted(set(by_kind) - {"Conv2D", "BatchNormalization", "Dense"})
  if unknown:
    raise ConfigError(f"the Keras model has {unknown[0]} layers "
                      f"({by_kind[unknown[0]][0].name!r}); only Conv2D, BatchNormalization "
                      "and Dense are loaded.")
  convs = sorted(by_kind.get("Conv2D", []), key=_creation_index)
  norms = sorted(by_kind.get("BatchNormalization", []), key=_creation_index)
  if norms and len(norms) != len(convs):
    raise ConfigError(f"the Keras model has {len(convs)} Conv2D and {len(norms)} "
                      "BatchNormalization layers; each conv needs its batch norm.")

  def tensors(layer):
    return {
        v.path.rsplit("/", 1)[-1]: (v.path, np.asarray(keras_ops().convert_to_numpy(v)))
        for v in layer.weights
    }

  groups = []
  for i, conv in enumerate(convs):
    leaves = tensors(conv)
    if norms:
      leaves.update(tensors(norms[i]))
    groups.append((conv.name, leaves))
  groups += [(d.name, tensors(d)) for d in by_kind.get("Dense", [])]
  return groups


def keras_ops():
  import keras
  return keras.ops


def from_keras(model: network.Network, keras_model) -> network.Network:
  """`model` (`inception_v3`, Keras's style) with the weights of a Keras
  `keras.applications.InceptionV3` (a live model; `keras_inception_v3` builds one from a
  `.weights.h5` file)."""
  return _load(model, _keras_groups(keras_model), _KERAS, f"{model.name} from Keras", "Keras model")


def keras():
  """Keras 3 on the JAX backend (unless the process chose another before)."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  try:
    return importlib.import_module("keras")
  except ImportError:
    raise ConfigError("Keras is not installed: pip install -e '.[keras]'") from None


def keras_inception_v3(weights: str | None, num_classes: int = 1000, image_size: int = 299):
  """Keras's InceptionV3 with logits out, for `image_size` inputs: `weights` None (random),
  "imagenet" (downloads) or a `.weights.h5` / `.h5` file (`load_keras_weights`)."""
  k = keras()
  from_file = weights not in (None, "imagenet")
  if from_file:
    _check_weights_file(weights)  # before building the network (seconds)
  net = k.applications.InceptionV3(weights=None if from_file else weights, classes=num_classes,
                                   classifier_activation=None,
                                   input_shape=(image_size, image_size, 3))
  if from_file:
    load_keras_weights(net, weights)
  return net


def _check_weights_file(path: str) -> None:
  if not os.path.isfile(path):
    raise ConfigError(f"--weights_file={path} does not exist.")
  import h5py  # Keras's own dependency
  try:
    h5py.File(path, "r").close()
  except OSError as e:
    raise ConfigError(f"--weights_file={path} is not a Keras weights file (HDF5): {e}.") from None


def load_keras_weights(net, path: str):
  """`net` with the weights of a Keras weights file, or a ConfigError naming the file."""
  _check_weights_file(path)
  try:
    net.load_weights(path)
  except Exception as e:  # h5py and Keras raise many kinds
    raise ConfigError(f"--weights_file={path} is not a Keras InceptionV3 weights file "
                      f"({type(e).__name__}: {str(e).splitlines()[0][:200]}).") from None
  return net


# What each source gives and how its weights expect their inputs (`pipeline.Preprocess`
# fields). torchvision's GoogLeNet and Inception-v3 ImageNet weights are used with
# `transform_input=True`, which turns inputs normalized with ImageNet's mean and std into
# (x - 0.5) / 0.5: our networks take that directly. Their random initialization keeps
# `transform_input=False` (ImageNet statistics). Keras's Inception-v3 takes [-1, 1]; its
# evaluation crops the central 87.5% (299 of 342). ResNets, SqueezeNets and MobileNetV2 take
# ImageNet's statistics with every weight (`imagenet_stats`). `random`: the builder's arguments
# for its random initialization.
_GOOGLENET_RANDOM = dict(aux_logits=False, transform_input=False, init_weights=True)
SOURCES = {
    "torchvision": {
        "googlenet_bn": dict(module="googlenet", builder="googlenet", image_size=224,
                             resize_to=256, weights="IMAGENET1K_V1", top1=69.778, model_kwargs={},
                             random=_GOOGLENET_RANDOM),
        "inception_v3": dict(module="inception", builder="inception_v3", image_size=299,
                             resize_to=342, weights="IMAGENET1K_V1", top1=77.294,
                             model_kwargs={"bn_use_scale": True, "avg_pool_count_pad": True},
                             random=_GOOGLENET_RANDOM),
        **{
            name: dict(module="resnet", builder=name, image_size=224, resize_to=256,
                       weights="IMAGENET1K_V1", top1=top1, model_kwargs={}, random={},
                       imagenet_stats=True)
            for name, top1 in (("resnet18", 69.758), ("resnet34", 73.314), ("resnet50", 76.130))
        },
        "mobilenet_v2": dict(module="mobilenetv2", builder="mobilenet_v2", image_size=224,
                             resize_to=256, weights="IMAGENET1K_V1", top1=71.878, model_kwargs={},
                             random={}, imagenet_stats=True),
        **{
            name: dict(module="squeezenet", builder=name, image_size=224, resize_to=256,
                       weights="IMAGENET1K_V1", top1=top1, model_kwargs={}, random={},
                       imagenet_stats=True)
            for name, top1 in (("squeezenet1_0", 58.092), ("squeezenet1_1", 58.178))
        },
    },
    "keras": {
        "inception_v3": dict(image_size=299, resize_to=342, weights="imagenet", top1=77.9,
                             model_kwargs={}),
    },
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def source_spec(source: str, name: str) -> dict:
  """SOURCES[source][name], or a ConfigError saying what is valid."""
  if source not in SOURCES:
    raise ConfigError(f"--source={source!r} is invalid; valid: {', '.join(SOURCES)}.")
  if name not in SOURCES[source]:
    raise ConfigError(f"--model={name!r} cannot be imported from {source}; valid: "
                      f"{', '.join(SOURCES[source])}.")
  return SOURCES[source][name]


def torchvision_state_dict(name: str, *, weights_file: str | None = None,
                           random_seed: int | None = None):
  """(state dict, what the weights are, whether inputs use ImageNet statistics): torchvision's
  ImageNet weights (downloaded), a local `.pth` state dict, or its random initialization."""
  spec = source_spec("torchvision", name)
  if weights_file is not None and not os.path.isfile(weights_file):  # before torch's import
    raise ConfigError(f"--weights_file={weights_file} does not exist.")
  compat.torchvision_models()
  builder = getattr(importlib.import_module(f"torchvision.models.{spec['module']}"),
                    spec["builder"])
  import torch
  if random_seed is not None:
    torch.manual_seed(random_seed)
    net = builder(weights=None, **spec["random"])
    return net.state_dict(), f"random initialization (torch seed {random_seed})", True
  imagenet_stats = spec.get("imagenet_stats", False)
  if weights_file is not None:
    try:
      state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors
      raise ConfigError(f"--weights_file={weights_file} is not a PyTorch state dict "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200]}).") from None
    if not isinstance(state, dict):
      raise ConfigError(f"--weights_file={weights_file} holds a {type(state).__name__}, not "
                        "a state dict.")
    return state, os.path.abspath(weights_file), imagenet_stats
  try:
    net = builder(weights=spec["weights"])
  except Exception as e:  # offline: URLError and others
    raise ConfigError(f"torchvision's {spec['weights']} weights of {name} could not be "
                      f"downloaded ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
                      "Offline, give --weights_file=PATH or --random.") from None
  return net.state_dict(), f"torchvision {spec['weights']}", imagenet_stats
