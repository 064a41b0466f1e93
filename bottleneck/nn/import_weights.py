"""Weights from another framework into our networks, checked tensor by tensor.

`from_torchvision(model, state_dict)` loads a torchvision `googlenet` (into `googlenet_bn`) or
`inception_v3` (into `inception_v3` built with `bn_use_scale=True`) state dict. Both networks
define their layers in the same order as ours, so the loader walks the two in step: each
conv unit takes one torchvision `BasicConv2d` (conv weight OIHW -> HWIO, batch-norm scale,
offset and running statistics), the head takes `fc` (transposed). Every tensor must be used
exactly once and fit the shape it lands in; the first that does not is named in a ConfigError.
Auxiliary heads (`aux1`, `aux2`, `AuxLogits`) are skipped unless the model builds one.

`torchvision_models()` imports `torchvision.models` where `import torchvision` itself fails:
PyPI's torchvision 0.28 is a CUDA build whose import registers kernels for its compiled ops,
which a CPU-only torch 2.13 refuses (`operator torchvision::nms does not exist`); the model
definitions use none of them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bottleneck.nn import blocks, layers, models
from bottleneck.validation import ConfigError

_AUX = ("aux1.", "aux2.", "AuxLogits.")


def torchvision_models():
  """`torchvision.models`, imported without `torchvision/__init__.py` if that fails."""
  try:
    return importlib.import_module("torchvision.models")
  except ImportError:
    raise ConfigError("torchvision is not installed: pip install -e '.[torch]'") from None
  except RuntimeError:
    pass
  for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
    del sys.modules[name]
  root = os.path.dirname(importlib.util.find_spec("torchvision").origin)
  for name, path in (("torchvision", root), ("torchvision.models", os.path.join(root, "models"))):
    module = types.ModuleType(name)
    module.__path__, module.__file__ = [path], os.path.join(path, "__init__.py")
    sys.modules[name] = module
  package = sys.modules["torchvision.models"]
  for sub in ("googlenet", "inception"):
    setattr(package, sub, importlib.import_module(f"torchvision.models.{sub}"))
  package.GoogLeNet = package.googlenet.GoogLeNet
  package.Inception3 = package.inception.Inception3
  return package


def _forward_order(module):
  """Our conv units and the classifier head, in the order the network applies them."""
  if isinstance(module, (layers.ConvUnit, layers.ClassifierHead)):
    yield module
  elif isinstance(module, models.Network):
    for name, stage in module.named_stages():
      yield from _forward_order(stage)
      for after, _, head in module.side_heads():
        if after == name:
          yield from _forward_order(head)
  elif isinstance(module, blocks.InceptionBase):
    yield from _forward_order(module.body)
  elif isinstance(module, blocks.Concat):
    for branch in module.branches:
      yield from _forward_order(branch)
  elif isinstance(module, nnx.Sequential):
    for layer in module.layers:
      yield from _forward_order(layer)


def _groups(state_dict, skip_aux: bool):
  """The state dict's tensors grouped per layer (its key less the last two parts), in order."""
  groups: dict[str, dict] = {}
  for key, value in state_dict.items():
    if skip_aux and key.startswith(_AUX):
      continue
    parts = key.split(".")
    layer, leaf = (".".join(parts[:-2]), ".".join(parts[-2:])) if parts[-2] in ("conv", "bn") \
        else (".".join(parts[:-1]), parts[-1])
    groups.setdefault(layer, {})[leaf] = np.asarray(value.detach().cpu().numpy()
                                                    if hasattr(value, "detach") else value)
  return groups


# Our layout -> torchvision's: conv kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in).
_OIHW, _OUT_IN = (3, 2, 0, 1), (1, 0)


def _put(variable, value, key: str, where: str, order=None):
  """`value` (torchvision's layout) into `variable` (ours), `order` giving ours -> theirs."""
  needed = tuple(variable.shape) if order is None else tuple(variable.shape[i] for i in order)
  if tuple(value.shape) != needed:
    raise ConfigError(f"{where}: tensor {key!r} has shape {tuple(value.shape)}; the layer it "
                      f"loads into needs {needed}.")
  if order is not None:
    value = value.transpose(np.argsort(order))
  variable[...] = jnp.asarray(value, variable.dtype)


def from_torchvision(model: models.Network, state_dict) -> models.Network:
  """`model` with the weights of torchvision's state dict (see the module docstring)."""
  where = f"{model.name} from torchvision"
  targets = list(_forward_order(model))
  groups = list(_groups(state_dict, skip_aux=not model.side_heads()).items())
  if len(groups) > len(targets):
    layer, tensors = groups[len(targets)]
    raise ConfigError(f"{where}: tensor {layer + '.' + next(iter(tensors))!r} has no place in "
                      f"{model.name} (all its {len(targets)} layers are taken before it).")
  if len(groups) < len(targets):
    raise ConfigError(f"{where}: the state dict ends after {len(groups)} layers; {model.name} "
                      f"has {len(targets)} (the tensors of its layer {len(groups) + 1} are "
                      "missing).")
  for (layer, tensors), target in zip(groups, targets):
    used = set()

    def take(leaf, variable, order=None):
      key = f"{layer}.{leaf}"
      if leaf not in tensors:
        raise ConfigError(f"{where}: tensor {key!r} is missing.")
      used.add(leaf)
      _put(variable, tensors[leaf], key, where, order)

    if isinstance(target, layers.ClassifierHead):
      take("weight", target.dense.kernel, _OUT_IN)
      take("bias", target.dense.bias)
    else:
      take("conv.weight", target.conv.kernel, _OIHW)
      if target.conv.bias is not None:
        take("conv.bias", target.conv.bias)
      norm = target.norm
      if norm is not None:
        if norm.scale is None:
          raise ConfigError(f"{where}: {model.name} has batch norm without a learned scale; "
                            "build it with bn_use_scale=True to take torchvision's weights.")
        take("bn.weight", norm.scale)
        take("bn.bias", norm.bias)
        take("bn.running_mean", norm.mean)
        take("bn.running_var", norm.var)
        used.add("bn.num_batches_tracked")
    extra = sorted(set(tensors) - used)
    if extra:
      raise ConfigError(f"{where}: tensor {layer + '.' + extra[0]!r} has no place in "
                        f"{model.name}.")
  return model
