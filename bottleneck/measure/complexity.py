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

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from bottleneck.nn import blocks, layers, network, paths, registry
from bottleneck.util import errors, validation


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
  """`module` with every conv one XLA conv of its whole input, computing all its kernel taps,
  as the papers count them (the `conv_taps="live"` path skips taps that meet only zero
  padding; the matmul and im2col paths reshape the input). Only the module's copy traced here
  gets the replaced `Paths` value (`Paths.for_counting`)."""
  for _, m in nnx.iter_modules(module):
    if isinstance(m, layers.ConvUnit):
      m.paths = m.paths.for_counting()
  return module


def trace(module: nnx.Module, x: jax.ShapeDtypeStruct, evaluate: bool = False):
  """The jaxpr of one call of `module` on abstract input `x`, every conv as the accounting
  counts it (`_counting`), in eval mode if `evaluate`; the module itself is left as it is. Nothing
  runs."""
  graphdef, state = nnx.split(module)

  def call(s, x):
    copy = _counting(nnx.merge(graphdef, s))
    if evaluate:
      copy.eval()
    return copy(x)

  return jax.make_jaxpr(call)(_abstract(state), x)


def module_macs(module: nnx.Module, input_shape: Sequence[int], dtype=jnp.float32) -> int:
  """MACs of one call of `module` on an input of `input_shape` (traced in eval mode, not run:
  the count does not depend on the mode, and batch norm's statistics updates would slow the
  trace, each a search of what is traced so far)."""
  return jaxpr_macs(trace(module, jax.ShapeDtypeStruct(tuple(input_shape), dtype), evaluate=True))


def xla_flops(compiled) -> float | None:
  """XLA's FLOP estimate from a compiled computation, or None where the backend gives none.

  `cost_analysis()` has returned a dict, a list of dicts (one per program), None, or -1
  depending on backend and JAX version; every form is handled here.
  """
  return xla_cost(compiled, "flops")


def xla_bytes(compiled) -> float | None:
  """XLA's "bytes accessed" of a compiled computation (its cost model's count of the bytes
  its optimized ops read and write), or None where the backend gives none."""
  return xla_cost(compiled, "bytes accessed")


def xla_cost(compiled, key: str) -> float | None:
  """Entry `key` of `compiled.cost_analysis()`, summed over its programs; None if absent."""
  try:
    cost = compiled.cost_analysis()
  except Exception as e:  # some backends raise instead
    logging.info("cost_analysis() unavailable: %s", e)
    return None
  if isinstance(cost, dict):
    cost = [cost]
  if not isinstance(cost, (list, tuple)):
    return None
  values = [c.get(key) for c in cost if isinstance(c, dict)]
  values = [v for v in values if v is not None and v >= 0]
  return float(sum(values)) if values else None


def model_xla_flops(model: nnx.Module, input_shape: Sequence[int]) -> float | None:
  """XLA's FLOPs for one forward of `model` (eval mode) on `input_shape`; compiles, runs nothing."""
  graphdef, state = nnx.split(model)

  def forward(s, x):
    m = nnx.merge(graphdef, s)
    m.eval()
    return m(x)

  compiled = jax.jit(forward).lower(_abstract(state),
                                    jax.ShapeDtypeStruct(tuple(input_shape),
                                                         jnp.float32)).compile()
  return xla_flops(compiled)


def analyze_model(model, *, xla: bool = True, memory: bool = False) -> dict:
  """Per-stage and total complexity of a `bottleneck.nn.network.Network` for one image.

  `model` may be real or abstract; it is not modified (a merged copy is put in eval mode).
  With `memory`, the memory accounting too (`memory_row`, `network_memory`), in the model's
  compute dtype, and with `xla` XLA's own figure per image (`xla_activation_bytes`: two
  training steps compiled, seconds on a CPU). Returns the JSON contract of
  `experiments.analyze` without the identifying keys.
  """
  graphdef, state = nnx.split(model)
  model = nnx.merge(graphdef, state)
  model.eval()
  side_heads = {after: (name, head) for after, name, head in model.side_heads()}
  x = jax.ShapeDtypeStruct((1, model.image_size, model.image_size, model.in_channels), jnp.float32)
  model.check_input(x.shape)
  dtype = compute_dtype(model)
  rows = []

  def row(name, module, x):
    jaxpr = trace(module, x)
    out = jaxpr.out_avals[0]
    rows.append({
        "name": name, "params": count_params(module), "macs": jaxpr_macs(jaxpr),
        "output_shape": list(out.shape[1:]), "widths": dict(getattr(module, "widths", ()))
    })
    if memory:
      rows[-1].update(memory_row(module, x, jaxpr, dtype))
    return jax.ShapeDtypeStruct(out.shape, out.dtype)

  for name, stage in model.named_stages():
    y = row(name, stage, x)
    if name in side_heads:
      row(*side_heads[name], y)
    x = y
  macs = sum(r["macs"] for r in rows)
  total = {
      "params": count_params(model), "batch_stats": count_batch_stats(model), "macs": macs,
      "flops": 2 * macs, "flops_xla": model_xla_flops(model, (1, model.image_size, model.image_size,
                                                              model.in_channels)) if xla else None
  }
  if memory:
    total.update(network_memory(model, rows, dtype))
    total["train_activation_bytes_xla"] = xla_activation_bytes(model) if xla else None
  return {"total": total, "layers": rows}


def analyze(name: str, *, reduce: bool, image_size: int | None = None,
            num_classes: int | None = None, xla: bool = True, memory: bool = False,
            **overrides) -> dict:
  """Complexity report for registry model `name` (built abstractly: no weights are made).
  `overrides` are model arguments (`dtype="bfloat16"` makes the memory figures bfloat16)."""
  model = registry.abstract_model(name, reduce=reduce, image_size=image_size,
                                  num_classes=num_classes, **overrides)
  report = {
      "model": name, "reduce": bool(reduce), "image_size": model.image_size,
      "num_classes": model.num_classes
  }
  if memory:
    report["dtype"] = jnp.dtype(compute_dtype(model)).name
  return {**report, **analyze_model(model, xla=xla, memory=memory)}


# --- memory: bytes moved, arithmetic intensity, what training keeps ---------------------------
#
# Analytic, per image, in the compute dtype (`itemsize` bytes per element), from shapes alone:
# - `bytes`: the least a layer can move: its input read once, its weights and biases (every
#   trainable parameter) read once, its output written once. For a block, its own input and
#   output: what it would move if it ran as one kernel keeping its intermediates on chip.
# - `conv_bytes`: the sum of `bytes` over a block's convs, each a kernel of its own (as XLA
#   runs them): the intermediates go to memory and back.
# - `intensity`: FLOPs (2 x MACs) per byte of `bytes`.
# - `saved_bytes`: what a training step holds of it for the backward pass: every layer output
#   once (`paths.kept`), in its own dtype (1 byte for an argmax pool's index); XLA's compiled
#   figure lies between this and `backward_minimum_bytes` (docs/memory.md).


def _scoped_eqns(jaxpr, prefix: str = ""):
  """(name scope, eqn) of every eqn of `jaxpr`, nested jaxprs included with their scope."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  for eqn in jaxpr.eqns:
    scope = "/".join(s for s in (prefix, str(eqn.source_info.name_stack)) if s)
    yield scope, eqn
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        yield from _scoped_eqns(sub, scope)


def _in_scope(scope: str, name: str) -> bool:
  """Whether name scope `scope` ("a/b/c") is `name` ("b/c") or inside it."""
  return f"/{name}/" in f"/{scope}/"


def _elements(aval) -> int:
  return math.prod(aval.shape)


def intensity(macs: int, nbytes: int) -> float:
  """FLOPs (2 x MACs) per byte."""
  return 2 * macs / nbytes if nbytes else float("inf")


def conv_rows(module: nnx.Module, jaxpr, itemsize: int) -> list[dict]:
  """Each `ConvUnit` of `module` (traced as `jaxpr` by `trace`) on its own: input and output
  shapes, MACs, parameters, `bytes` and `intensity` (per image when the trace's batch is 1)."""
  scoped = [(s, e) for s, e in _scoped_eqns(jaxpr) if e.primitive.name == "conv_general_dilated"]
  rows = []
  for _, unit in nnx.iter_modules(module):
    if not isinstance(unit, layers.ConvUnit):
      continue
    ops = [e for s, e in scoped if _in_scope(s, unit.name)]
    if len(ops) != 1:
      raise RuntimeError(f"{unit.name}: {len(ops)} conv ops carry its name scope, not one.")
    op = ops[0]  # an XLA conv of the unit's input as it is (`Paths.for_counting`)
    shape_in = op.invars[0].aval.shape
    out = op.outvars[0].aval
    in_elements = _elements(op.invars[0].aval)
    params = count_params(unit)
    macs = jaxpr_macs(
        jax.extend.core.ClosedJaxpr(jax.extend.core.Jaxpr([], op.invars, op.outvars, [op]), []))
    nbytes = (in_elements + params + _elements(out)) * itemsize
    rows.append({
        "name": unit.name, "kernel": list(unit.kernel_size), "strides": list(unit.strides),
        "in_channels": unit.in_features, "out_channels": unit.out_features,
        "input_shape": list(shape_in[1:]), "output_shape": list(out.shape[1:]), "params": params,
        "macs": macs, "bytes": nbytes, "intensity": intensity(macs, nbytes)
    })
  return rows


def _training_split(module: nnx.Module):
  """(graphdef, parameters, the rest) of a copy of `module` in train mode, its dropout
  deterministic (a mask is no memory worth counting, and needs no RNG here)."""
  module = nnx.merge(*nnx.split(module))
  module.train()
  for _, m in nnx.iter_modules(module):
    if isinstance(m, nnx.Dropout):
      m.deterministic = True
  return nnx.split(module, nnx.Param, ...)


def _norms_as_layers(module: nnx.Module) -> nnx.Module:
  """`module` with every batch norm its own layer (XLA's path), whose output the accounting
  counts as it counts every layer's: the fused path (`paths.batch_norm_fused`) computes batch
  norm and its ReLU as one op with one output, a saving of the path, not of the network."""
  for _, m in nnx.iter_modules(module):
    if isinstance(m, layers.ConvUnit):
      m.paths = dataclasses.replace(m.paths, norm="xla")
  return module


def _train_vjp(module: nnx.Module, x: jax.ShapeDtypeStruct, policy=None):
  """The jaxpr of `jax.vjp` of `module`'s train-mode forward on `x` (with `jax.checkpoint`'s
  `policy`, if given), and how many of its outputs are residuals. Dropout runs deterministic:
  its mask, on a head's pooled vector, is a few KB."""
  graphdef, params, rest = _training_split(module)

  def forward(p, r, x):
    return _norms_as_layers(nnx.merge(graphdef, p, r))(x)

  if policy is not None:
    forward = jax.checkpoint(forward, policy=policy)
  # The rest of the state (batch statistics, RNG counters) goes through `vjp` too: the module
  # updates it, which nnx allows only at the level it was merged at.
  closed, shapes = jax.make_jaxpr(lambda p, r, x: jax.vjp(forward, p, r, x),
                                  return_shape=True)(_abstract(params), _abstract(rest), x)
  return closed.jaxpr, len(jax.tree.leaves(shapes[1]))


def _nbytes(aval) -> int:
  return _elements(aval) * aval.dtype.itemsize


def saved_bytes(module: nnx.Module, x: jax.ShapeDtypeStruct) -> int:
  """Bytes of every layer output of `module`'s train-mode forward on `x` (conv, batch norm,
  ReLU, pool, LRN, concat, head, and the argmax pool's indices: what `paths.kept` names),
  each once: what a training step holds for its backward when it recomputes nothing, as XLA
  does. Parameters and the input are left out (held anyway). Traced, nothing runs."""
  jaxpr, _ = _train_vjp(module, x)
  outs = {
      e.outvars[0]: e.outvars[0].aval
      for _, e in _scoped_eqns(jaxpr)
      if e.primitive.name == "name" and e.params.get("name") == paths.LAYER_OUTPUT
  }
  return sum(_nbytes(a) for a in outs.values())


def backward_minimum_bytes(module: nnx.Module, x: jax.ShapeDtypeStruct) -> int:
  """The least `saved_bytes` can be without recomputing a layer: the layer outputs the
  backward reads (a ReLU's input for its mask, a conv's input for its kernel's gradient, ...),
  the rest recomputed from them (`jax.checkpoint` with those names saveable; the residuals of
  its `vjp`, parameters and the input left out)."""
  jaxpr, n_res = _train_vjp(module, x,
                            jax.checkpoint_policies.save_only_these_names(paths.LAYER_OUTPUT))
  held = set(jaxpr.invars)  # parameters, statistics and the input
  total = 0
  for v in jaxpr.outvars[len(jaxpr.outvars) - n_res:]:
    if not isinstance(v, jax.extend.core.Literal) and v not in held:
      held.add(v)
      total += _nbytes(v.aval)
  return total


def memory_row(module: nnx.Module, x: jax.ShapeDtypeStruct, jaxpr, dtype) -> dict:
  """The memory fields of one row of `analyze_model` for `module` on `x` (batch 1), traced as
  `jaxpr`: `bytes`, `intensity`, `conv_bytes`, `saved_bytes`, and `convs` (`conv_rows`)."""
  itemsize = jnp.dtype(dtype).itemsize
  macs = jaxpr_macs(jaxpr)
  nbytes = (_elements(x) + count_params(module) + _elements(jaxpr.out_avals[0])) * itemsize
  convs = conv_rows(module, jaxpr, itemsize)
  return {
      "bytes": nbytes, "intensity": intensity(macs,
                                              nbytes), "conv_bytes": sum(c["bytes"] for c in convs),
      "saved_bytes": saved_bytes(module, jax.ShapeDtypeStruct(x.shape, dtype)), "convs": convs
  }


def compute_dtype(module: nnx.Module):
  """The dtype `module` computes in: its first conv's or dense layer's (float32 if none)."""
  for _, m in nnx.iter_modules(module):
    if isinstance(m, (nnx.Conv, nnx.Linear)) and m.dtype is not None:
      return jnp.dtype(m.dtype)
  return jnp.dtype(jnp.float32)


def network_memory(model, rows: list[dict], dtype) -> dict:
  """Per image: `train_activation_bytes`, what a training step's forward holds for its
  backward (`saved_bytes` of the whole network: the peak, reached as the forward ends),
  `backward_minimum_bytes`, the least it could hold without recomputing a layer, and
  `largest_tensor_bytes`, the largest map that must be held at once: the image, or the input
  or output of a conv or of a stage (MobileNetV2's Table 3 measure)."""
  itemsize = jnp.dtype(dtype).itemsize
  shape = (1, model.image_size, model.image_size, model.in_channels)
  x = jax.ShapeDtypeStruct(shape, dtype)
  maps = [math.prod(shape)] + [math.prod(r["output_shape"]) for r in rows] + [
      math.prod(s) for r in rows for c in r["convs"] for s in (c["input_shape"], c["output_shape"])
  ]
  return {
      "train_activation_bytes": saved_bytes(model, x),
      "backward_minimum_bytes": backward_minimum_bytes(model, x),
      "largest_tensor_bytes": max(maps) * itemsize
  }


def compiled_train_memory(model: nnx.Module, batch: int) -> dict | None:
  """XLA's memory for one training step of `model` at `batch` (train mode; gradients of the
  summed logits with respect to the parameters and the input): `temp_bytes` (activations,
  the backward's buffers, workspace), `argument_bytes`, `output_bytes`
  (`compiled.memory_analysis()`); None where the backend gives none. Compiles, runs nothing."""
  graphdef, params, rest = _training_split(model)

  def step(p, r, x):
    return nnx.grad(lambda m, x: jnp.sum(m(x).astype(jnp.float32)),
                    argnums=(0, 1))(nnx.merge(graphdef, p, r), x)

  x = jax.ShapeDtypeStruct((batch, model.image_size, model.image_size, model.in_channels),
                           compute_dtype(model))
  units = [m for _, m in nnx.iter_modules(model) if isinstance(m, layers.ConvUnit)]
  options = units[0].paths.compiler_options("memory") if units else None  # as training jits
  compiled = jax.jit(step, compiler_options=options).lower(_abstract(params), _abstract(rest),
                                                           x).compile()
  try:
    mem = compiled.memory_analysis()
  except Exception as e:  # some backends raise instead
    logging.info("memory_analysis() unavailable: %s", e)
    mem = None
  if mem is None:
    return None
  return {
      "temp_bytes": int(mem.temp_size_in_bytes), "argument_bytes": int(mem.argument_size_in_bytes),
      "output_bytes": int(mem.output_size_in_bytes)
  }


def xla_activation_bytes(model: nnx.Module, batches: tuple[int, int] = (2, 6)) -> float | None:
  """XLA's training-step memory per image: the growth of `compiled_train_memory`'s temp bytes
  from one batch to the other over the images added (what does not grow with the batch, such
  as buffers for the weights' gradients, drops out). None where the backend gives none."""
  small, large = (compiled_train_memory(model, b) for b in batches)
  if small is None or large is None:
    return None
  return (large["temp_bytes"] - small["temp_bytes"]) / (batches[1] - batches[0])


def conv_macs(height: int, width: int, in_channels: int, out_channels: int, kernel: int) -> int:
  """MACs of a stride-1 SAME k x k conv on an H x W x C_in map: H W k^2 C_in C_out."""
  return height * width * kernel * kernel * in_channels * out_channels


def reduction_cost(height: int, width: int, channels: int, depths) -> list[dict]:
  """What a 1x1 conv reducing an H x W x C map to H x W x D costs, for each D: parameters
  (weights and biases), MACs and the output's size, counted on an abstract conv."""
  rows = []
  for d in depths:
    unit = nnx.eval_shape(
        lambda d=d: layers.ConvUnit(channels, d, 1, rngs=nnx.Rngs(0), name="reduction"))
    rows.append({
        "input": f"{height}x{width}x{channels}", "D": d, "output": f"{height}x{width}x{d}",
        "output elements": height * width * d, "params": count_params(unit),
        "MACs (M)": module_macs(unit, (1, height, width, channels)) / 1e6,
        "output / input size": d / channels
    })
  return rows


MATCH_METRICS = ("macs", "params")


def cost(name: str, metric: str, **kwargs) -> int:
  """MACs per image or parameters of registry model `name` built (abstractly) from `kwargs`."""
  model = registry.abstract_model(name, **kwargs)
  if metric == "params":
    return count_params(model)
  return module_macs(model, (1, model.image_size, model.image_size, model.in_channels))


def match_width(name: str, *, metric: str, budget: float, tolerance: float = 0.01,
                **kwargs) -> dict:
  """How model `name` (built from `kwargs`, which must not set `width` or `width_extra`) costs
  `budget` MACs or parameters within `tolerance` (relative): {"width", "width_extra", "cost",
  "error"} (the cost's relative distance from the budget).

  Cost is a step function of the width (channels are rounded to whole numbers) that never
  decreases. Bisection over log width (1/64 to 16, until the bracket is 0.01% wide) finds the
  two widths whose costs straddle the budget. Where every layer rounds up at the same width,
  that jump can be several percent: then the layers are widened by one channel one at a time
  (`width_extra`, the first k of the model's widths; `network.Widths`), and a second bisection
  over k finds the nearest cost. ConfigError, naming the variant, when even that misses by more
  than `tolerance` or the budget is out of reach."""
  where = f"{name} ({blocks.variant(kwargs.get('reduce', True))})"
  validation.choice(metric, "match metric", MATCH_METRICS, where)
  if "width" not in registry.model_arguments(name):
    raise errors.ConfigError(f"{name} has no width multiplier to match a budget with; "
                             f"models that have one: {', '.join(_with_width())}.")
  if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
    raise errors.ConfigError(f"{where}: match_{metric}={budget!r} is invalid; it must be "
                             "a positive number.")
  # The cost depends on the width only through the channels it gives each layer, which the
  # published widths (`width_bases`) decide: a width that gives channels already seen (most
  # steps near the end of a bisection) is not built again.
  bases = registry.abstract_model(name, width=1.0, **kwargs).width_bases
  costs = {}

  def f(w, k=0):
    key = tuple(network.scaled(c, w, i < k) for i, c in enumerate(bases))
    if key not in costs:
      costs[key] = cost(name, metric, width=w, width_extra=k, **kwargs)
    return costs[key]

  lo, hi = 1 / 64, 16.0
  lo_c, hi_c = f(lo), f(hi)
  if not lo_c <= budget <= hi_c:
    raise errors.ConfigError(
        f"{where}: match_{metric}={budget:.4g} is out of reach: from width 1/64 to 16 it "
        f"costs {lo_c:.4g} to {hi_c:.4g} {metric}.")
  while hi / lo > 1.0001:
    mid = math.sqrt(lo * hi)
    c = f(mid)
    if c <= budget:
      lo, lo_c = mid, c
    else:
      hi, hi_c = mid, c
  candidates = [(lo, 0, lo_c), (hi, 0, hi_c)]
  if min(abs(c - budget) for *_, c in candidates) > tolerance * budget:
    # Between the two widths: widen lo's layers one channel at a time. Cost never decreases
    # with k, and widening every layer reaches at least hi's cost.
    count = len(bases)
    k_lo, k_hi = 0, count
    k_hi_c = f(lo, count)
    while k_hi - k_lo > 1:
      mid = (k_lo + k_hi) // 2
      c = f(lo, mid)
      if c <= budget:
        k_lo, lo_c = mid, c
      else:
        k_hi, k_hi_c = mid, c
    candidates += [(lo, k_lo, lo_c), (lo, k_hi, k_hi_c)]
  width, extra, found = min(candidates, key=lambda p: (abs(p[2] - budget), p[1]))
  error = (found - budget) / budget
  if abs(error) > tolerance:
    raise errors.ConfigError(
        f"{where}: no width costs {budget:.4g} {metric} within {tolerance:.0%}: the nearest, "
        f"width {width:.5f} with {extra} layer(s) one channel wider, costs {found:.4g} "
        f"({error:+.2%}); one channel is too coarse a step for this budget.")
  logging.info("%s: width %.4f%s costs %d %s (budget %.4g, %+.2f%%)", where, width,
               f" + {extra} channel(s)" if extra else "", found, metric, budget, 100 * error)
  return {"width": width, "width_extra": extra, "cost": found, "error": error}


def _with_width() -> list[str]:
  return [m for m in registry.MODELS if "width" in registry.model_arguments(m)]


def analyze_matched(name: str, *, reduce: bool, metric: str, budget: float,
                    image_size: int | None = None, num_classes: int | None = None, xla: bool = True,
                    memory: bool = False, **overrides) -> dict:
  """`analyze` at the width that costs `budget` (`match_width`), with `width` and `match`
  (metric, budget, the cost found) added to the report."""
  spec = registry.get_spec(name)
  image_size = spec.image_size if image_size is None else image_size  # 0 is refused, not 32
  num_classes = spec.num_classes if num_classes is None else num_classes
  match = match_width(name, metric=metric, budget=budget, reduce=reduce, image_size=image_size,
                      num_classes=num_classes, **overrides)
  report = analyze(name, reduce=reduce, image_size=image_size, num_classes=num_classes, xla=xla,
                   memory=memory, width=match["width"], width_extra=match["width_extra"],
                   **overrides)
  return {**report, "width": match["width"], "match": {"metric": metric, "budget": budget, **match}}
