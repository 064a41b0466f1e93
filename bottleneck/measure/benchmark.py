"""Does saving multiply-adds save time? Blocks and networks, naive vs reduced, timed.

Every case is compiled once (timed), warmed up, then timed `repeats` times with
`block_until_ready`; the median and the spread (min, max) are reported. Achieved GFLOP/s use the
analytic MACs (forward: 2 x MACs; forward+backward: 3 x that, the usual convention that the
backward pass costs twice the forward), and `peak_fraction` divides the forward+backward rate by
the device's matmul peak measured in the same run with a large `jnp.dot`. Ratios are only ever
taken between numbers measured in the same run.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import blocks, inception, mobilenet, network, nin, registry, resnet, squeezenet
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.paths import KINDS, Paths
from bottleneck.util import env, validation
from bottleneck.util.errors import ConfigError, UserError

DTYPES = env.DTYPES
# The columns of a rendered result row (`tables.benchmark_results`), in order.
COLUMNS = [
    "name", "reduce", "ratio", "batch", "dtype", *KINDS, "macs", "compile_s", "fwd_ms",
    "fwd_bwd_ms", "fwd_bwd_ms_min", "fwd_bwd_ms_max", "images_per_s", "gflops_per_s",
    "peak_fraction", "memory_mb", "fwd_bwd_temp_mb", "activation_mb", "xla_over_analytic"
]

# The column of a ratio row: the naive MACs over the reduced.
MACS_RATIO = "MACs naive/reduced"


@dataclasses.dataclass(frozen=True)
class Case:
  """One thing to time: `build(reduce, dtype, paths, ratio)` returns the module (`paths`: a
  `bottleneck.nn.paths.Paths`; `ratio`: the reductions' `Reduction.ratio`, None for the
  published widths), fed NHWC input."""
  name: str
  build: Callable[..., nnx.Module]
  image_size: int
  channels: int
  variants: tuple[bool, ...] = (True, False)  # the `reduce` values it has


def _googlenet_block(row):
  name, *widths = row

  def build(reduce, dtype, paths, ratio=None):
    return blocks.GoogLeNetInception(GOOGLENET_INPUTS[name][1], *widths,
                                     reduction=Reduction(enabled=reduce, ratio=ratio),
                                     style=ConvStyle(dtype=dtype,
                                                     paths=paths), rngs=nnx.Rngs(0), name=name)

  return Case(name, build, GOOGLENET_INPUTS[name][0], GOOGLENET_INPUTS[name][1])


# GoogLeNet blocks: (input side, input channels), as in the paper's network.
GOOGLENET_INPUTS = {
    "inception_3a": (28, 192), "inception_3b": (28, 256), "inception_4a": (14, 480),
    "inception_4b": (14, 512), "inception_4c": (14, 512), "inception_4d": (14, 512),
    "inception_4e": (14, 528), "inception_5a": (7, 832), "inception_5b": (7, 832)
}


def _v3_block(name, cls, side, cin, *args):

  def build(reduce, dtype, paths, ratio=None):
    style = dataclasses.replace(inception.KERAS_V3_STYLE, dtype=dtype, paths=paths)
    return cls(cin, *args, reduction=Reduction(enabled=reduce, ratio=ratio), style=style,
               rngs=nnx.Rngs(0), name=name)

  return Case(name, build, side, cin)


def _small_block(name, cls, side, cin, *args):

  def build(reduce, dtype, paths, ratio=None):
    style = ConvStyle(use_bias=True, batch_norm=True, dtype=dtype, paths=paths)
    return cls(cin, *args, reduction=Reduction(enabled=reduce, ratio=ratio or 0.5), style=style,
               rngs=nnx.Rngs(0), name=name)

  return Case(name, build, side, cin)


# ResNet-50 bottleneck blocks, one per stage, each a stage's later block (identity shortcut):
# (input side, input channels = output channels, planes), as in torchvision's resnet50.
RESNET_BLOCKS = {
    "resnet_layer1": (56, 256, 64), "resnet_layer2": (28, 512, 128),
    "resnet_layer3": (14, 1024, 256), "resnet_layer4": (7, 2048, 512)
}


def _resnet_block(name):
  side, cin, planes = RESNET_BLOCKS[name]

  def build(reduce, dtype, paths, ratio=None):
    style = dataclasses.replace(resnet.STYLE, dtype=dtype, paths=paths)
    return resnet.Residual(cin, planes, reduction=Reduction(enabled=reduce, ratio=ratio),
                           style=style, rngs=nnx.Rngs(0), name=name)

  return Case(name, build, side, cin)


# SqueezeNet 1.0's fire modules: (input side, input channels, squeeze, expand 1x1, expand 3x3).
FIRE_BLOCKS = {
    "fire3": (54, 128, 16, 64, 64), "fire7": (27, 384, 48, 192, 192),
    "fire9": (13, 512, 64, 256, 256)
}
# MobileNetV2's stride-1 inverted residuals with the input added back: (input side, channels).
MOBILENET_BLOCKS = {
    "mobilenet_block3": (56, 24), "mobilenet_block6": (28, 32), "mobilenet_block13": (14, 96),
    "mobilenet_block16": (7, 160)
}


def _fire_block(name):
  side, cin, *widths = FIRE_BLOCKS[name]

  def build(reduce, dtype, paths, ratio=None):
    style = dataclasses.replace(squeezenet.STYLE, dtype=dtype, paths=paths)
    return squeezenet.Fire(cin, *widths, reduction=Reduction(enabled=reduce, ratio=ratio),
                           style=style, rngs=nnx.Rngs(0), name=name)

  return Case(name, build, side, cin)


def _mobilenet_block(name):
  side, channels = MOBILENET_BLOCKS[name]

  def build(reduce, dtype, paths, ratio=None):
    if ratio is not None:  # timed under another label, it would be the published block
      raise ConfigError(f"{name}: MobileNetV2's 1x1s expand; it has no reduction ratio "
                        f"(ratio={ratio}).")
    style = dataclasses.replace(mobilenet.STYLE, dtype=dtype, paths=paths)
    return mobilenet.InvertedResidual(channels, channels,
                                      reduction=Reduction(enabled=reduce, activation=False),
                                      style=style, rngs=nnx.Rngs(0), name=name)

  return Case(name, build, side, channels)


# NiN's mlpconv blocks at their CIFAR-10 sizes: (input side, input channels, k x k kernel and
# channels, 1x1 widths), as `nin.LAYOUT` builds them.
NIN_BLOCKS = {
    f"nin_mlpconv{i}": (side, cin, kernel, channels, mlp)
    for i, (side, cin, (kernel, channels, mlp,
                        _)) in enumerate(zip((32, 16, 8), (3, 96, 192), nin.LAYOUT), start=1)
}


def _nin_block(name):
  side, cin, kernel, channels, mlp = NIN_BLOCKS[name]

  def build(reduce, dtype, paths, ratio=None):
    if ratio is not None:
      raise ConfigError(f"{name}: NiN's 1x1s follow its k x k conv; it has no reduction ratio "
                        f"(ratio={ratio}).")
    style = dataclasses.replace(nin.STYLE, dtype=dtype, paths=paths)
    return nin.MlpConv(cin, channels, kernel, mlp, reduction=Reduction(enabled=reduce), style=style,
                       rngs=nnx.Rngs(0), name=name)

  return Case(name, build, side, cin)


def _network(name, image_size, model_kwargs: dict | None = None, label: str | None = None):
  model_kwargs = dict(model_kwargs or {})

  def build(reduce, dtype, paths, ratio=None):
    kwargs = dict(model_kwargs, **({} if ratio is None else {"reduction_ratio": ratio}))
    return registry.abstract_model(name, reduce=reduce, image_size=image_size, dtype=dtype,
                                   paths=paths, **kwargs)

  # The model's own default input channels (3 for the ImageNet networks, 1 for the digits').
  init = registry.get_spec(name).build.func.__init__
  channels = inspect.signature(init).parameters.get("in_channels")
  channels = model_kwargs.get(
      "in_channels", channels.default if channels is not None else network.Network.in_channels)
  return Case(label or f"{name}@{image_size}", build, image_size, channels,
              registry.get_spec(name).variants)


def _model_kwargs(name: str, items: list[str], spec: str) -> dict:
  """`key=value` items of a network case (`model@size,width=0.25,in_channels=1`), each value
  of the type the model's argument has."""
  types = registry.model_arguments(name)
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep:
      raise ConfigError(f"benchmark case {spec!r}: {item!r} is not key=value.")
    validation.choice(key, f"argument of model {name!r}", list(types), f"benchmark {spec!r}")
    try:
      if types[key] is bool:
        out[key] = {"true": True, "1": True, "false": False, "0": False}[value.lower()]
      else:
        out[key] = types[key](value)
    except (ValueError, KeyError):
      raise ConfigError(f"benchmark case {spec!r}: {key}={value!r} is not a "
                        f"{types[key].__name__}.") from None
  return out


def cases() -> dict[str, Case]:
  """Every case by name: GoogLeNet blocks, Inception-v3 blocks, small modules, ResNet-50's
  bottleneck blocks, SqueezeNet's fire modules, MobileNetV2's inverted residuals, NiN's
  mlpconv blocks."""
  out = {
      c.name: c
      for c in (_googlenet_block(r) for r in inception.GOOGLENET_TABLE1 if r[1] is not None)
  }
  for c in (_v3_block("v3_block_a", blocks.InceptionV3A, 35, 192,
                      32), _v3_block("v3_reduction_a", blocks.InceptionV3ReductionA, 35, 288),
            _v3_block("v3_block_b", blocks.InceptionV3B, 17, 768,
                      128), _v3_block("v3_reduction_b", blocks.InceptionV3ReductionB, 17,
                                      768), _v3_block("v3_block_c", blocks.InceptionV3C, 8, 1280),
            _small_block("small_inception", blocks.SmallInception, 28, 96, 32,
                         32), _small_block("small_downsample", blocks.SmallDownsample, 28, 80, 80)):
    out[c.name] = c
  out.update({name: _resnet_block(name) for name in RESNET_BLOCKS})
  out.update({name: _fire_block(name) for name in FIRE_BLOCKS})
  out.update({name: _mobilenet_block(name) for name in MOBILENET_BLOCKS})
  out.update({name: _nin_block(name) for name in NIN_BLOCKS})
  return out


def case(name: str) -> Case:
  """A case by name; networks as `model@size[,argument=value...]` (e.g. `googlenet_bn@224`,
  `inception_small@28,width=0.25,in_channels=1`)."""
  if "@" in name:
    model, _, rest = name.partition("@")
    size, *items = rest.split(",")
    validation.choice(model, "model", registry.MODELS, "benchmark")
    if not size.isdigit():
      raise ConfigError(f"benchmark case {name!r}: the image size {size!r} is not a whole "
                        "number (model@size[,argument=value...]).")
    return _network(model, int(size), _model_kwargs(model, items, name), name)
  known = cases()
  validation.choice(name, "benchmark case", list(known) + ["<model>@<size>"], "benchmark")
  return known[name]


def time_calls(fn, args, warmup: int, repeats: int) -> list[float]:
  """Seconds of each of `repeats` calls of `fn(*args)` after `warmup` calls, each waited for
  (`block_until_ready`)."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return times


def matmul_peak(dtype=jnp.float32, n: int | None = None, repeats: int = 5) -> float:
  """GFLOP/s of an n x n x n `jnp.dot`: the device's practical matmul peak, measured now.

  n defaults to 2048 on a CPU and 8192 elsewhere: on a GPU a 2048^3 product is mostly its
  launch, and reads below what whole Inception blocks reach (docs/benchmarks.md, "GPU")."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
  dot = jax.jit(jnp.dot)
  t = statistics.median(time_calls(dot, (a, a), warmup=2, repeats=repeats))
  return 2 * n**3 / t / 1e9


def run_case(c: Case, *, reduce: bool, batch: int, dtype: str = "float32", warmup: int = 1,
             repeats: int = 5, peak_gflops: float | None = None, paths: Paths = Paths(),
             ratio: float | None = None) -> dict:
  """Times one case: compile, forward, forward+backward (w.r.t. parameters and input).

  The row names the paths actually taken ("auto" resolved), one column per kind, and the
  reductions' ratio (None: the published widths; always None for the naive variant).
  """
  jdtype = DTYPES[validation.choice(dtype, "dtype", DTYPES, "benchmark")]
  paths = paths.resolve("benchmark")
  ratio = ratio if reduce else None
  module = registry.fill_random(c.build(reduce, jdtype, paths, ratio))
  options = paths.compiler_options("benchmark")
  shape = (batch, c.image_size, c.image_size, c.channels)
  x = jnp.asarray(np.random.default_rng(1).normal(size=shape), jdtype)
  macs = complexity.module_macs(module, shape)
  module.eval()
  eval_def, state = nnx.split(module)
  module.train()
  train_def, _ = nnx.split(module)
  params, rest = nnx.split_state(state, nnx.Param, ...)

  def forward(params, rest, x):
    return nnx.merge(eval_def, params, rest)(x)

  def forward_backward(params, rest, x):
    # As in training: gradients w.r.t. the parameters, and w.r.t. the input as a block inside
    # a network needs; batch norm in train mode.
    model = nnx.merge(train_def, params, rest)
    return nnx.grad(lambda m, x: jnp.sum(m(x).astype(jnp.float32)), argnums=(0, 1))(model, x)

  row = {
      "name": c.name, "reduce": reduce, "ratio": ratio, "batch": batch, "image_size": c.image_size,
      "dtype": dtype, **paths.as_dict(), "macs": macs, "params": complexity.count_params(module)
  }
  for key, fn in (("fwd", forward), ("fwd_bwd", forward_backward)):
    t = time.perf_counter()
    compiled = jax.jit(fn, compiler_options=options).lower(params, rest, x).compile()
    row[f"{key}_compile_s"] = time.perf_counter() - t
    times = time_calls(compiled, (params, rest, x), warmup, repeats)
    row[f"{key}_ms"] = 1e3 * statistics.median(times)
    row[f"{key}_ms_min"], row[f"{key}_ms_max"] = 1e3 * min(times), 1e3 * max(times)
    mem = compiled.memory_analysis()
    if key == "fwd":
      row["flops_xla"] = complexity.xla_flops(compiled)
      row["bytes_xla"] = complexity.xla_bytes(compiled)
      row["memory_mb"] = (
          None if mem is None else
          (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2**20)
    else:  # XLA's temp memory of forward+backward, against every layer output held (analytic)
      row["fwd_bwd_temp_mb"] = None if mem is None else mem.temp_size_in_bytes / 2**20
      row["activation_mb"] = complexity.saved_bytes(nnx.merge(train_def, params, rest),
                                                    jax.ShapeDtypeStruct(x.shape, x.dtype)) / 2**20
  row["compile_s"] = row["fwd_compile_s"] + row["fwd_bwd_compile_s"]
  row["images_per_s"] = batch / (row["fwd_bwd_ms"] / 1e3)
  row["gflops_per_s_fwd"] = 2 * macs / (row["fwd_ms"] / 1e3) / 1e9
  row["gflops_per_s"] = 3 * 2 * macs / (row["fwd_bwd_ms"] / 1e3) / 1e9
  row["peak_gflops_per_s"] = peak_gflops
  row["peak_fraction"] = (row["gflops_per_s"] / peak_gflops) if peak_gflops else None
  row["xla_over_analytic"] = (row["flops_xla"] / (2 * macs)) if row["flops_xla"] else None
  return row


def add_torch_peer(row: dict, c: Case, *, compile_: bool, warmup: int, repeats: int) -> None:
  """Times the PyTorch twin of a float32 row's case (`torch_peer.from_nnx`, same weights) in
  eager mode and, with `compile_`, under `torch.compile`, and adds the JAX/PyTorch ratios.

  Before timing, the twin must have our parameter count and give our outputs (eval mode).
  """
  from bottleneck.measure import torch_peer
  module = registry.fill_random(
      c.build(row["reduce"], jnp.float32, Paths(**row_paths(row)), row["ratio"]))
  peer = torch_peer.from_nnx(module)
  if torch_peer.count_params(peer) != row["params"]:
    raise RuntimeError(f"{row['name']}: the PyTorch peer has {torch_peer.count_params(peer)} "
                       f"parameters, ours {row['params']}; it is not the same network.")
  x = np.random.default_rng(2).normal(size=(2, c.image_size, c.image_size, c.channels))
  row["torch_rel_diff"] = torch_peer.check_same(module, peer, x.astype(np.float32), row["name"])
  for mode, comp in (("eager", False),) + ((("compile", True),) if compile_ else ()):
    t = torch_peer.time_peer(peer, (row["batch"], c.channels, c.image_size, c.image_size),
                             compile_=comp, warmup=warmup, repeats=repeats)
    row["torch_device"] = t["device"]
    row[f"torch_{mode}_fwd_ms"] = t["fwd_ms"]
    row[f"torch_{mode}_fwd_bwd_ms"] = t["fwd_bwd_ms"]
    row[f"jax/torch_{mode} fwd"] = row["fwd_ms"] / t["fwd_ms"]
    row[f"jax/torch_{mode} fwd_bwd"] = row["fwd_bwd_ms"] / t["fwd_bwd_ms"]


def run(case_names, *, batches, reduces=(True, False), dtypes=("float32",), paths=("auto",),
        warmup=1, repeats=5, progress=True, torch_peer=False, torch_compile=False, ratios=(None,),
        on_row=None) -> list[dict]:
  """Every combination, the matmul peak measured first (per dtype) in the same process.

  `on_row(row)`, if given, is called with each row as soon as it is complete (failed ones too),
  so that a caller can keep the rows of a run that is stopped part way.

  `paths`: path sets to time, each as `bottleneck.nn.paths.Paths.parse` reads it ("auto",
  "xla", "xla,conv_1x1=matmul", ...). `ratios`: the reduced variant at each reduction ratio
  (None: the published widths); the naive variant, which has no reductions, is timed once.
  """
  for r in ratios:
    if r is not None:
      validation.ratio(r, "ratio", "benchmark")
  # Every number checked before anything is timed: a batch of 0 divided by zero, 0 repeats
  # left every case without a median.
  if not list(batches):
    raise ConfigError("benchmark: batches is empty; give at least one batch size >= 1.")
  for b in batches:
    validation.positive_int(b, "batches", "benchmark")
  validation.positive_int(repeats, "repeats", "benchmark")
  validation.whole(warmup, "warmup", "benchmark", 0)
  for d in dtypes:
    validation.choice(d, "dtype", DTYPES, "benchmark")
  path_sets = [Paths.parse(p) for p in paths]  # a bad spec fails before any timing
  if torch_peer:  # PyTorch, or a clear error before anything is timed
    importlib.import_module("bottleneck.measure.torch_peer")
  peaks = {d: matmul_peak(DTYPES[d]) for d in dtypes}
  logging.info("matmul peak: %s", {d: f"{p:.1f} GFLOP/s" for d, p in peaks.items()})
  rows = []
  variants = {n: _variants(n) for n in case_names}
  combos = [(n, b, r, d, p, q)
            for n in case_names
            for b in batches
            for d in dtypes
            for p in path_sets
            for r in reduces if r in variants[n] for q in (ratios if r else (None,))]
  for i, (name, batch, reduce, dtype, path_set, ratio) in enumerate(combos):
    if progress:
      logging.info("[%d/%d] %s %s%s batch %d %s %s", i + 1, len(combos), name,
                   blocks.variant(reduce), "" if ratio is None else f" ratio {ratio}", batch, dtype,
                   " ".join(f"{k}={v}" for k, v in path_set.as_dict().items()))
    try:
      c = case(name)
      rows.append(
          run_case(c, reduce=reduce, batch=batch, dtype=dtype, warmup=warmup, repeats=repeats,
                   peak_gflops=peaks[dtype], paths=path_set, ratio=ratio))
      if torch_peer and dtype == "float32":
        add_torch_peer(rows[-1], c, compile_=torch_compile, warmup=warmup, repeats=repeats)
    except (UserError, RuntimeError, ValueError, MemoryError) as e:  # the rest still runs
      logging.error("%s failed: %s: %s", name, type(e).__name__, e)
      rows.append({
          "name": name, "reduce": reduce, "ratio": ratio, "batch": batch, "dtype": dtype,
          **path_set.as_dict(), "error": f"{type(e).__name__}: {e}"
      })
    if on_row is not None:
      on_row(rows[-1])
  return rows


def _variants(name: str) -> tuple[bool, ...]:
  """The `reduce` values case `name` has (resnet18 and resnet34 only the naive one); both for
  a name that is not a case, which then fails in the loop with its own error."""
  try:
    return case(name).variants
  except UserError:
    return (True, False)


def failed(rows: list[dict]) -> list[dict]:
  return [r for r in rows if "error" in r]


def row_paths(row: dict) -> dict[str, str]:
  """The paths a row was timed with; a kind added after the row was written took XLA's op
  (rows before the fused batch norm, `norm`, computed it with XLA's)."""
  return {k: row.get(k, "xla") for k in KINDS}


def timed(rows: list[dict]) -> list[dict]:
  return [r for r in rows if "error" not in r]


def central_ratios(rows: list[dict]) -> list[dict]:
  """naive/reduced time against naive/reduced MACs, per case, batch, dtype and paths: each
  reduced row (at each ratio) against the naive row of its case."""
  key = lambda r: (r["name"], r["batch"], r["dtype"], *row_paths(r).values())
  naive = {key(r): r for r in timed(rows) if not r["reduce"]}
  out = []
  for red in timed(rows):
    k = key(red)
    if not red["reduce"] or k not in naive:
      continue
    macs_ratio = naive[k]["macs"] / red["macs"]
    time_ratio = naive[k]["fwd_bwd_ms"] / red["fwd_bwd_ms"]
    out.append({
        "name": k[0], "ratio": red.get("ratio"), "batch": k[1], "dtype": k[2],
        **dict(zip(KINDS, k[3:])), MACS_RATIO: macs_ratio, "time naive/reduced": time_ratio,
        "time saved": "yes" if time_ratio > 1.05 else ("no" if time_ratio < 0.95 else "even")
    })
  return out


def break_even(ratios: list[dict]) -> list[str]:
  """For each case timed at several reduction ratios: up to which ratio the reduced block is
  faster than the naive one (time naive/reduced > 1), and from which it is not."""
  groups: dict[tuple, list[dict]] = {}
  for r in ratios:
    if r.get("ratio") is not None:
      groups.setdefault((r["name"], r["batch"], r["dtype"]), []).append(r)
  lines = []
  for (name, batch, dtype), rs in sorted(groups.items()):
    if len(rs) < 2:
      continue
    rs = sorted(rs, key=lambda r: r["ratio"])
    slower = [r for r in rs if r["time naive/reduced"] <= 1.0]
    where = f"{name} (batch {batch}, {dtype})"
    if not slower:
      lines.append(f"{where}: the reduced block is faster at every ratio timed (up to "
                   f"{rs[-1]['ratio']:g}: {rs[-1]['time naive/reduced']:.2f}x).")
    else:
      faster = [r for r in rs if r["ratio"] < slower[0]["ratio"]]
      lines.append(f"{where}: the reduced block stops being faster at ratio "
                   f"{slower[0]['ratio']:g} ({slower[0]['time naive/reduced']:.2f}x; "
                   + (f"{faster[-1]['time naive/reduced']:.2f}x at {faster[-1]['ratio']:g})."
                      if faster else "and at every smaller ratio timed)."))
  return lines


def verdict(ratios: list[dict]) -> str:
  """A line saying whether the saving in MACs turned into a saving in time on this device."""
  if not ratios:
    return "No naive/reduced pairs were timed."
  saved = sum(r["time saved"] == "yes" for r in ratios)
  geo = math.exp(statistics.mean(math.log(r["time naive/reduced"]) for r in ratios))
  geo_macs = math.exp(statistics.mean(math.log(r[MACS_RATIO]) for r in ratios))
  return " ".join([
      f"On {env.device_description()}, the reductions cut MACs {geo_macs:.2f}x and "
      f"forward+backward time {geo:.2f}x (geometric means over {len(ratios)} pairs); time "
      f"was saved in {saved} of {len(ratios)} pairs.", *break_even(ratios)
  ])
