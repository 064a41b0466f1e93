"""Complexity accounting: parameters, analytic multiply-accumulates (MACs), XLA's FLOP count.

Conventions (the README explains them at length):
- `params`: trainable `nnx.Param` elements (conv and dense weights and biases, batch-norm scale
  and offset). Batch-norm running statistics (`nnx.BatchStat`) are reported apart.
- `macs`: multiply-accumulates of the conv and dense layers per image, from shapes alone, as
  the papers count them (GoogLeNet's Table 1 "ops"): for a conv, output elements x kernel taps x
  input channels per group, *including* taps that fall on zero padding. Pooling, normalization,
  activations and additions count zero.
- `flops` = 2 x MACs.
- `flops_xla`: XLA's own estimate for the compiled forward (`cost_analysis()["flops"]`). It skips
  taps on zero padding and adds element-wise work (batch norm, ReLU, pooling, softmax-free head),
  so it differs from 2 x MACs by a few percent either way.

Nothing here runs a convolution: shapes come from tracing abstract values (`jax.make_jaxpr` on
`ShapeDtypeStruct` leaves, `nnx.eval_shape`), and XLA's count from compiling, not running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from bottleneck.nn import layers, registry


def count_params(module: nnx.Module) -> int:
  """Trainable parameter elements (`nnx.Param`) of `module`, real or abstract."""
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def count_batch_stats(module: nnx.Module) -> int:
  """Batch-norm running statistics (`nnx.BatchStat`) elements: not trained, reported apart."""
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.BatchStat)))


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def jaxpr_macs(jaxpr) -> int:
  """Multiply-accumulates of every conv and dot in `jaxpr` (nested jaxprs included)."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      out = eqn.outvars[0].aval.shape
      rhs = eqn.invars[1].aval.shape
      out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
      # Per output element: kernel taps x input channels of its group = |rhs| / out channels.
      total += math.prod(out) * (math.prod(rhs) // rhs[out_feature_dim])
    elif name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    else:
      times = eqn.params.get("length", 1) if name == "scan" else 1
      for value in eqn.params.values():
        for sub in _sub_jaxprs(value):
          total += times * jaxpr_macs(sub)
  return total


def _abstract(tree):
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _counting(module: nnx.Module) -> nnx.Module:
  """`module` with every conv computing all its kernel taps, as the papers count them.

  The `conv_taps="live"` path skips taps that meet only zero padding; only the module's copy
  traced here gets the replaced `Paths` value (`Paths.for_counting`)."""
  for _, m in nnx.iter_modules(module):
    if isinstance(m, layers.ConvUnit):
      m.paths = m.paths.for_counting()
  return module


def _trace(module: nnx.Module, x: jax.ShapeDtypeStruct):
  graphdef, state = nnx.split(module)
  return jax.make_jaxpr(lambda s, x: _counting(nnx.merge(graphdef, s))(x))(_abstract(state), x)


def module_macs(module: nnx.Module, input_shape: Sequence[int], dtype=jnp.float32) -> int:
  """MACs of one call of `module` on an input of `input_shape` (traced, not run)."""
  return jaxpr_macs(_trace(module, jax.ShapeDtypeStruct(tuple(input_shape), dtype)))


def xla_flops(compiled) -> float | None:
  """XLA's FLOP estimate from a compiled computation, or None where the backend gives none.

  `cost_analysis()` has returned a dict, a list of dicts (one per program), None, or -1
  depending on backend and JAX version; every form is handled here.
  """
  try:
    cost = compiled.cost_analysis()
  except Exception as e:  # pylint: disable=broad-except  # some backends raise instead
    logging.info("cost_analysis() unavailable: %s", e)
    return None
  if isinstance(cost, dict):
    cost = [cost]
  if not isinstance(cost, (list, tuple)):
    return None
  flops = [c.get("flops") for c in cost if isinstance(c, dict)]
  flops = [f for f in flops if f is not None and f >= 0]
  return float(sum(flops)) if flops else None


def model_xla_flops(model: nnx.Module, input_shape: Sequence[int]) -> float | None:
  """XLA's FLOPs for one forward of `model` (eval mode) on `input_shape`; compiles, runs nothing."""
  graphdef, state = nnx.split(model)

  def forward(s, x):
    m = nnx.merge(graphdef, s)
    m.eval()
    return m(x)

  compiled = jax.jit(forward).lower(
      _abstract(state), jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)).compile()
  return xla_flops(compiled)


def analyze_model(model, *, xla: bool = True) -> dict:
  """Per-stage and total complexity of a `bottleneck.nn.models.Network` for one image.

  `model` may be real or abstract; it is not modified (a merged copy is put in eval mode).
  Returns the JSON contract of `experiments.analyze` without the identifying keys.
  """
  graphdef, state = nnx.split(model)
  model = nnx.merge(graphdef, state)
  model.eval()
  side_heads = {after: (name, head) for after, name, head in model.side_heads()}
  x = jax.ShapeDtypeStruct((1, model.image_size, model.image_size, model.in_channels),
                           jnp.float32)
  model.check_input(x.shape)
  rows = []

  def row(name, module, x):
    jaxpr = _trace(module, x)
    out = jaxpr.out_avals[0]
    rows.append({"name": name, "params": count_params(module), "macs": jaxpr_macs(jaxpr),
                   "output_shape": list(out.shape[1:]),
                   "widths": dict(getattr(module, "widths", ()))})
    return jax.ShapeDtypeStruct(out.shape, out.dtype)

  for name, stage in model.named_stages():
    y = row(name, stage, x)
    if name in side_heads:
      row(*side_heads[name], y)
    x = y
  macs = sum(r["macs"] for r in rows)
  total = {"params": count_params(model), "batch_stats": count_batch_stats(model),
           "macs": macs, "flops": 2 * macs,
           "flops_xla": model_xla_flops(model, (1, model.image_size, model.image_size,
                                                model.in_channels)) if xla else None}
  return {"total": total, "layers": rows}


def analyze(name: str, *, reduce: bool, image_size: int | None = None,
            num_classes: int | None = None, xla: bool = True, **overrides) -> dict:
  """Complexity report for registry model `name` (built abstractly: no weights are made)."""
  model = registry.abstract_model(name, reduce=reduce, image_size=image_size,
                                  num_classes=num_classes, **overrides)
  return {"model": name, "reduce": bool(reduce), "image_size": model.image_size,
          "num_classes": model.num_classes, **analyze_model(model, xla=xla)}


def conv_macs(height: int, width: int, in_channels: int, out_channels: int,
              kernel: int) -> int:
  """MACs of a stride-1 SAME k x k conv on an H x W x C_in map: H W k^2 C_in C_out."""
  return height * width * kernel * kernel * in_channels * out_channels


def reduction_cost(height: int, width: int, channels: int, depths) -> list[dict]:
  """What a 1x1 conv reducing an H x W x C map to H x W x D costs, for each D: parameters
  (weights and biases), MACs and the output's size, counted on an abstract conv."""
  rows = []
  for d in depths:
    unit = nnx.eval_shape(lambda d=d: layers.ConvUnit(channels, d, 1, rngs=nnx.Rngs(0),
                                                      name="reduction"))
    rows.append({"input": f"{height}x{width}x{channels}", "D": d,
                 "output": f"{height}x{width}x{d}", "output elements": height * width * d,
                 "params": count_params(unit),
                 "MACs (M)": module_macs(unit, (1, height, width, channels)) / 1e6,
                 "output / input size": d / channels})
  return rows
