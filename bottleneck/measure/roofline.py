"""Memory and the roofline: why time does (or does not) follow multiply-adds.

Measured in one run, on this device: the matmul peak (`benchmark.matmul_peak`) and the memory
bandwidth (`bandwidth`: a copy and a STREAM triad). Each timed module is then placed under the
two roofs: its arithmetic intensity (FLOPs = 2 x MACs per byte moved at least, analytic:
`complexity.memory_row`) against the GFLOP/s its forward achieved. Below the ridge point
(peak / bandwidth) a module is memory-bound: no saving in MACs can make it faster than its
bytes allow.

What is timed: Inception blocks naive and reduced (as `experiments.benchmark` times them), each
conv of a block alone (`conv_cases`), and ShuffleNetV2's fragmentation set-up (`fragments`:
the same FLOPs as one conv, or split into 2 or 4 parallel branches). `train_memory` compares a
training step's memory, naive against reduced: analytic and XLA's compiled figure, and the
largest batch that fits a memory budget.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from bottleneck.measure import benchmark, complexity
from bottleneck.nn import blocks, layers, registry
from bottleneck.nn.blocks import Concat
from bottleneck.nn.paths import Paths
from bottleneck.util import env, errors, validation

DTYPES = env.DTYPES


def bandwidth(dtype: str = "float32", elements: int = 2**27, cache_elements: int = 2**19,
              repeats: int = 5) -> dict:
  """The device's memory bandwidth in GB/s, measured now (medians of `repeats`):
  `copy_gb_per_s` (y = x + 1: one array read, one written) and `triad_gb_per_s` (STREAM's
  a = b + s c: two read, one written) on arrays of `elements` (512 MiB each in float32, beyond
  the caches), and `cache_triad_gb_per_s`, the triad on arrays of `cache_elements` (2 MiB
  each), which stay in a large cache: the roof of a working set that fits there."""
  jdtype = DTYPES[validation.choice(dtype, "dtype", DTYPES, "bandwidth")]
  validation.positive_int(elements, "bandwidth_elements", "bandwidth")
  out = {}
  for prefix, n in (("", elements), ("cache_", cache_elements)):
    b = jnp.ones(n, jdtype)  # the values do not matter; they are inputs, not constants
    c = jnp.full(n, 2, jdtype)
    nbytes = n * jnp.dtype(jdtype).itemsize
    kernels = (("copy", lambda x: x + 1, (b,), 2), ("triad", lambda b, c: b + 3 * c, (b, c), 3))
    for name, fn, args, arrays in kernels[1:] if prefix else kernels:
      calls = repeats if prefix == "" else 20 * repeats  # short calls: more of them
      t = statistics.median(benchmark.time_calls(jax.jit(fn), args, warmup=2, repeats=calls))
      out[f"{prefix}{name}_gb_per_s"] = arrays * nbytes / t / 1e9
    del b, c
  return out


def attainable(intensity: float, peak_gflops: float, gb_per_s: float) -> float:
  """The roofline: GFLOP/s a kernel of `intensity` (FLOP/B) can reach at most."""
  return min(peak_gflops, gb_per_s * intensity)


def bound(intensity: float, peak_gflops: float, gb_per_s: float) -> str:
  """"memory" below the ridge point (peak / bandwidth), "compute" at or above it."""
  return "memory" if intensity < peak_gflops / gb_per_s else "compute"


def intensities(module: nnx.Module, shape, dtype) -> dict:
  """Analytic MACs and bytes of one forward of `module` on `shape` (the whole batch: weights
  read once, activations once per image), in the compute dtype: `bytes` (the module as one
  kernel) and `conv_bytes` (each conv a kernel of its own, as XLA runs them; a lone conv's
  own bytes), and the intensities of both."""
  module = nnx.merge(*nnx.split(module))
  module.eval()
  x = jax.ShapeDtypeStruct(tuple(shape), dtype)
  jaxpr = complexity.trace(module, x)
  row = complexity.memory_row(module, x, jaxpr, dtype)
  macs = complexity.jaxpr_macs(jaxpr)
  conv_bytes = row["conv_bytes"] or row["bytes"]
  return {
      "macs": macs, "bytes": row["bytes"], "conv_bytes": conv_bytes, "intensity": row["intensity"],
      "conv_intensity": complexity.intensity(macs, conv_bytes)
  }


# --- what is timed ---------------------------------------------------------------------------


def conv_cases(block: str) -> list[benchmark.Case]:
  """Each conv unit of benchmark case `block` (e.g. "inception_3a"), naive and reduced, as a
  case of its own on the input it gets inside the block: "inception_3a reduced/#3x3_0"."""
  c = benchmark.case(block)
  out = []
  for reduce in (True, False):
    module = c.build(reduce, jnp.float32, Paths())
    x = jax.ShapeDtypeStruct((1, c.image_size, c.image_size, c.channels), jnp.float32)
    rows = {r["name"]: r for r in complexity.conv_rows(module, complexity.trace(module, x), 4)}
    for _, unit in nnx.iter_modules(module):
      if not isinstance(unit, layers.ConvUnit):
        continue
      h, w, cin = rows[unit.name]["input_shape"]
      if h != w:
        raise ValueError(f"{unit.name}: input {h}x{w} is not square; a case's input is.")
      variant = blocks.variant(reduce)

      def build(_reduce, dtype, paths, _ratio=None, block_reduce=reduce, name=unit.name):
        rebuilt = c.build(block_reduce, dtype, paths)
        return next(m for _, m in nnx.iter_modules(rebuilt)
                    if isinstance(m, layers.ConvUnit) and m.name == name)

      out.append(benchmark.Case(f"{block} {variant}/{unit.name.split('/')[-1]}", build, h, cin))
  return out


def fragments(parts: int, *, side: int = 28, channels: int = 128,
              depth: int = 10) -> benchmark.Case:
  """ShuffleNetV2's G3 set-up: `depth` blocks, each `parts` parallel 1x1 convs (+ ReLU) of
  `channels` / `parts` outputs each on the whole input, concatenated: the same FLOPs and
  parameters whatever `parts`, in 1, 2 or 4 kernels."""
  if parts < 1 or channels % parts:
    raise errors.ConfigError(f"fragments: parts={parts} must divide channels={channels}.")

  def build(_reduce, dtype, paths, _ratio=None):
    rngs = nnx.Rngs(0)
    return nnx.Sequential(*[
        Concat([
            layers.ConvUnit(channels, channels // parts, 1, style=layers.ConvStyle(
                paths=paths, dtype=dtype), rngs=rngs, name=f"block{d}/part{p}")
            for p in range(parts)
        ])
        for d in range(depth)
    ])

  return benchmark.Case(f"fragments_{parts}", build, side, channels)


def time_case(c: benchmark.Case, *, reduce, batch: int, dtype: str, peak: float, bw: float,
              warmup: int, repeats: int, kind: str) -> dict:
  """`benchmark.run_case`'s row for `c`, placed on the roofline: forward GFLOP/s, its
  intensities, the roof above it and the fraction of it reached, and the bound."""
  row = benchmark.run_case(c, reduce=bool(reduce), batch=batch, dtype=dtype, warmup=warmup,
                           repeats=repeats, peak_gflops=peak)
  module = c.build(bool(reduce), DTYPES[dtype], Paths().resolve("roofline"))
  shape = (batch, c.image_size, c.image_size, c.channels)
  row.update(intensities(module, shape, DTYPES[dtype]))
  row["kind"], row["reduce"] = kind, reduce
  row["fwd_gflops_per_s"] = 2 * row["macs"] / (row["fwd_ms"] / 1e3) / 1e9
  row["roof_gflops_per_s"] = attainable(row["conv_intensity"], peak, bw)
  row["of_roof"] = row["fwd_gflops_per_s"] / row["roof_gflops_per_s"]
  row["bound"] = bound(row["conv_intensity"], peak, bw)
  return row


def plan(blocks, *, conv_blocks=(), fragment_parts=(1, 2, 4), fragment_shape=(28, 128, 10),
         batch: int = 32, dtype: str = "float32") -> list[tuple[benchmark.Case, bool | None, str]]:
  """What `run` times, (case, reduce, kind) each, every argument checked: a bad one is a
  ConfigError before anything is measured."""
  validation.positive_int(batch, "batch", "roofline")
  validation.choice(dtype, "dtype", DTYPES, "roofline")
  side, channels, depth = (validation.positive_int(v, n, "roofline fragments")
                           for v, n in zip(fragment_shape, ("side", "channels", "depth")))
  todo = [(benchmark.case(b), r, "block") for b in blocks for r in (False, True)]
  todo += [(c, None, "conv") for b in conv_blocks for c in conv_cases(b)]
  todo += [(fragments(p, side=side, channels=channels, depth=depth), None, "fragments")
           for p in fragment_parts]
  return todo


def run(blocks, *, conv_blocks=(), fragment_parts=(1, 2, 4), fragment_shape=(28, 128, 10),
        batch: int = 32, dtype: str = "float32", warmup: int = 1, repeats: int = 5,
        bandwidth_elements: int = 2**27, progress: bool = True) -> dict:
  """Peak and bandwidth, then every block (naive and reduced), every conv of `conv_blocks`,
  and the fragmentation cases (`fragments` with (side, channels, depth) `fragment_shape`),
  timed in this one run; {"device", "dtype", "batch", "peak_gflops_per_s", "bandwidth",
  "ridge", "rows"}. A case that fails is a row with its "error"."""
  todo = plan(blocks, conv_blocks=conv_blocks, fragment_parts=fragment_parts,
              fragment_shape=fragment_shape, batch=batch, dtype=dtype)
  peak = benchmark.matmul_peak(DTYPES[dtype])
  bw = bandwidth(dtype, elements=bandwidth_elements)
  logging.info(
      "matmul peak %.1f GFLOP/s; bandwidth: copy %.1f GB/s, triad %.1f GB/s, in "
      "cache %.1f GB/s", peak, bw["copy_gb_per_s"], bw["triad_gb_per_s"],
      bw["cache_triad_gb_per_s"])
  rows = []
  for i, (c, reduce, kind) in enumerate(todo):
    if progress:
      logging.info("[%d/%d] %s%s batch %d %s", i + 1, len(todo), c.name, "" if reduce is None else
                   (" reduced" if reduce else " naive"), batch, dtype)
    try:
      rows.append(
          time_case(c, reduce=reduce, batch=batch, dtype=dtype, peak=peak, bw=bw["triad_gb_per_s"],
                    warmup=warmup, repeats=repeats, kind=kind))
    except (errors.UserError, RuntimeError, ValueError, MemoryError) as e:
      logging.error("%s failed: %s: %s", c.name, type(e).__name__, e)
      rows.append({
          "name": c.name, "kind": kind, "reduce": reduce, "batch": batch, "dtype": dtype,
          "error": f"{type(e).__name__}: {e}"
      })
  return {
      "device": env.device_description(), "dtype": dtype, "batch": batch, "peak_gflops_per_s": peak,
      "bandwidth": bw, "ridge": peak / bw["triad_gb_per_s"], "rows": rows
  }


# --- training memory, naive against reduced ---------------------------------------------------

# Besides its activations, a training step holds the weights, their gradients and the
# optimizer's state: Adam's two moments (`optax.adam`), each the size of the weights.
WEIGHT_COPIES = 4


@dataclasses.dataclass(frozen=True)
class Affine:
  """Bytes = `fixed` + `per_image` x batch."""
  fixed: float
  per_image: float

  def at(self, batch: int) -> float:
    return self.fixed + self.per_image * batch

  def largest_batch(self, budget: float) -> int:
    """The largest batch whose bytes fit `budget` (0 if not even one image does)."""
    return max(0, math.floor((budget - self.fixed) / self.per_image))


def check_train_memory(name: str, *, reduce: bool, batch: int, budget_gb: float,
                       **overrides) -> nnx.Module:
  """The abstract model `train_memory` measures, its arguments checked (ConfigError)."""
  if validation.positive_int(batch, "memory_batch", "roofline") < 3:
    raise errors.ConfigError(f"memory_batch={batch} is invalid: the compiled figure needs "
                             "two batches, 2 and it; give 3 or more.")
  if isinstance(budget_gb, bool) or not isinstance(budget_gb, (int, float)) or budget_gb <= 0:
    raise errors.ConfigError(f"budget_gb={budget_gb!r} is invalid; it must be a positive "
                             "number of GB.")
  return registry.abstract_model(name, reduce=reduce, **overrides)


def train_memory(name: str, *, reduce: bool, batch: int = 32, budget_gb: float = 16.0,
                 xla: bool = True, **overrides) -> dict:
  """A training step of registry model `name` at `batch`: analytic bytes (weights, gradients,
  Adam's moments; every layer output and the input, per image) and, with `xla`, XLA's compiled
  figure (a gradient step compiled at batches 2 and `batch`: argument, output and temp bytes,
  plus Adam's moments, affine in the batch), each with the largest batch that fits
  `budget_gb` (GB, 1e9 bytes)."""
  model = check_train_memory(name, reduce=reduce, batch=batch, budget_gb=budget_gb, **overrides)
  dtype = complexity.compute_dtype(model)
  shape = (1, model.image_size, model.image_size, model.in_channels)
  x = jax.ShapeDtypeStruct(shape, dtype)
  weights = sum(
      math.prod(v.shape) * v.dtype.itemsize for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
  image = math.prod(shape) * jnp.dtype(dtype).itemsize
  analytic = Affine(WEIGHT_COPIES * weights, complexity.saved_bytes(model, x) + image)
  budget = budget_gb * 1e9
  row = {
      "model": name, "reduce": reduce, "image_size": model.image_size,
      "dtype": jnp.dtype(dtype).name, "batch": batch, "budget_gb": budget_gb,
      "params": complexity.count_params(model), "weights_bytes": weights,
      "activation_bytes_per_image": analytic.per_image - image,
      "backward_minimum_bytes_per_image": complexity.backward_minimum_bytes(model, x),
      "analytic_bytes": analytic.at(batch), "analytic_largest_batch": analytic.largest_batch(budget)
  }
  if xla:
    small, large = (complexity.compiled_train_memory(model, b) for b in (2, batch))
    if small is not None and large is not None:
      total = lambda m: sum(m.values()) + (WEIGHT_COPIES - 2) * weights  # + Adam's moments
      per_image = (total(large) - total(small)) / (batch - 2)
      compiled = Affine(total(large) - per_image * batch, per_image)
      row.update({
          "xla_temp_bytes": large["temp_bytes"], "xla_argument_bytes": large["argument_bytes"],
          "xla_output_bytes": large["output_bytes"], "xla_bytes": compiled.at(batch),
          "xla_bytes_per_image": per_image, "xla_largest_batch": compiled.largest_batch(budget),
          "xla_over_analytic": compiled.at(batch) / analytic.at(batch)
      })
  return row


# --- what the numbers say ---------------------------------------------------------------------


def _variant(r: dict) -> str:
  return "" if r["reduce"] is None else (" reduced" if r["reduce"] else " naive")


def findings(result: dict, memory: list[dict] = ()) -> list[str]:
  """One line per block (bound, intensity, how far below its roof), one for the convs, one
  for fragmentation, one per model's training memory: computed from the numbers."""
  rows = [r for r in result["rows"] if "error" not in r]
  ridge, peak, bw = result["ridge"], result["peak_gflops_per_s"], result["bandwidth"]
  lines = [
      f"On {result['device']} ({result['dtype']}, batch {result['batch']}): matmul peak "
      f"{peak:.1f} GFLOP/s, triad {bw['triad_gb_per_s']:.1f} GB/s, copy "
      f"{bw['copy_gb_per_s']:.1f} GB/s: ridge point {ridge:.1f} FLOP/B. A working set that "
      f"stays in cache moves {bw['cache_triad_gb_per_s']:.1f} GB/s (triad): its ridge is "
      f"at {peak / bw['cache_triad_gb_per_s']:.1f}."
  ]
  for r in (r for r in rows if r["kind"] == "block"):
    lines.append(f"{r['name']}{_variant(r)}: {r['bound']}-bound ({r['conv_intensity']:.1f} "
                 f"FLOP/B with each conv a kernel, {r['intensity']:.1f} as one), "
                 f"{r['fwd_gflops_per_s']:.1f} GFLOP/s forward, {r['of_roof']:.2f} of its roof.")
  convs = [r for r in rows if r["kind"] == "conv"]
  if convs:
    below = [r for r in convs if r["bound"] == "memory"]
    lines.append(f"Convs timed alone: {len(below)} of {len(convs)} below the ridge ("
                 + ", ".join(f"{r['name']} {r['conv_intensity']:.1f}" for r in below)
                 + f"); they reach {min(r['of_roof'] for r in convs):.2f} to "
                 f"{max(r['of_roof'] for r in convs):.2f} of their roofs.")
  frag = {r["name"]: r for r in rows if r["kind"] == "fragments"}
  if "fragments_1" in frag and len(frag) > 1:
    one = frag["fragments_1"]
    lines.append("Fragmentation (same FLOPs, forward+backward): one conv "
                 f"{one['fwd_bwd_ms']:.2f} ms; "
                 + "; ".join(f"{n.split('_')[1]} parallel {r['fwd_bwd_ms']:.2f} ms "
                             f"({r['fwd_bwd_ms'] / one['fwd_bwd_ms']:.2f}x)"
                             for n, r in sorted(frag.items())
                             if n != "fragments_1") + ".")
  by_model: dict[str, dict] = {}
  for m in memory:
    by_model.setdefault(m["model"], {})[blocks.variant(m["reduce"])] = m
  for model, v in by_model.items():
    if {"naive", "reduced"} <= set(v):
      n, r = v["naive"], v["reduced"]
      lines.append(
          f"{model}@{n['image_size']} training at batch {n['batch']}: activations "
          f"{n['activation_bytes_per_image'] / 1e6:.1f} MB/image naive, "
          f"{r['activation_bytes_per_image'] / 1e6:.1f} reduced "
          f"({n['activation_bytes_per_image'] / r['activation_bytes_per_image']:.2f}x); "
          f"weights {n['weights_bytes'] / 1e6:.0f} MB against {r['weights_bytes'] / 1e6:.0f}; "
          f"largest batch in {n['budget_gb']:g} GB: {n['analytic_largest_batch']} naive, "
          f"{r['analytic_largest_batch']} reduced (analytic)"
          + (f", {n['xla_largest_batch']} and {r['xla_largest_batch']} (XLA's compiled)."
             if "xla_largest_batch" in n and "xla_largest_batch" in r else "."))
  return lines
