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

from bottleneck import validation
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


MATCH_METRICS = ("macs", "params")


def cost(name: str, metric: str, **kwargs) -> int:
  """MACs per image or parameters of registry model `name` built (abstractly) from `kwargs`."""
  model = registry.abstract_model(name, **kwargs)
  if metric == "params":
    return count_params(model)
  return module_macs(model, (1, model.image_size, model.image_size, model.in_channels))


def match_width(name: str, *, metric: str, budget: float, tolerance: float = 0.01,
                **kwargs) -> tuple[float, int]:
  """(width multiplier, its cost): the width at which model `name` (built from `kwargs`, which
  must not set `width`) costs `budget` MACs or parameters, within `tolerance` (relative).

  Cost is a step function of the width (channels are rounded to whole numbers) that never
  decreases, so bisection (over log width, 1/64 to 16, until the bracket is 0.01% wide) finds
  the two widths whose costs straddle the budget; the nearer is returned. ConfigError when no
  width comes within `tolerance` (the steps are too coarse) or the budget is out of reach."""
  validation.choice(metric, "match metric", MATCH_METRICS, name)
  if "width" not in registry.model_arguments(name):
    raise validation.ConfigError(f"{name} has no width multiplier to match a budget with; "
                                 f"models that have one: {', '.join(_with_width())}.")
  if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
    raise validation.ConfigError(f"{name}: match_{metric}={budget!r} is invalid; it must be "
                                 "a positive number.")
  f = lambda w: cost(name, metric, width=w, **kwargs)
  lo, hi = 1 / 64, 16.0
  lo_c, hi_c = f(lo), f(hi)
  if not lo_c <= budget <= hi_c:
    raise validation.ConfigError(
        f"{name}: match_{metric}={budget:.4g} is out of reach: from width 1/64 to 16 it "
        f"costs {lo_c:.4g} to {hi_c:.4g} {metric}.")
  while hi / lo > 1.0001:
    mid = math.sqrt(lo * hi)
    c = f(mid)
    if c <= budget:
      lo, lo_c = mid, c
    else:
      hi, hi_c = mid, c
  width, found = min((lo, lo_c), (hi, hi_c), key=lambda p: abs(p[1] - budget))
  if abs(found - budget) > tolerance * budget:
    raise validation.ConfigError(
        f"{name}: no width costs {budget:.4g} {metric} within {tolerance:.0%}: width "
        f"{lo:.5f} costs {lo_c:.4g} and width {hi:.5f} costs {hi_c:.4g}.")
  logging.info("%s: width %.4f costs %d %s (budget %.4g)", name, width, found, metric, budget)
  return width, found


def _with_width() -> list[str]:
  return [m for m in registry.MODELS if "width" in registry.model_arguments(m)]


def analyze_matched(name: str, *, reduce: bool, metric: str, budget: float,
                    image_size: int | None = None, num_classes: int | None = None,
                    xla: bool = True, **overrides) -> dict:
  """`analyze` at the width that costs `budget` (`match_width`), with `width` and `match`
  (metric, budget, the cost found) added to the report."""
  spec = registry.get_spec(name)
  image_size = image_size or spec.image_size
  num_classes = num_classes or spec.num_classes
  width, found = match_width(name, metric=metric, budget=budget, reduce=reduce,
                             image_size=image_size, num_classes=num_classes, **overrides)
  report = analyze(name, reduce=reduce, image_size=image_size, num_classes=num_classes,
                   xla=xla, width=width, **overrides)
  return {**report, "width": width,
          "match": {"metric": metric, "budget": budget, "width": width, "cost": found}}
