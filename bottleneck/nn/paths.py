"""Paths: how the ops of a network are computed, XLA's own op or a faster formulation of it.

A `Paths` value holds one choice per kind of op ("auto", "xla", or a kind's own: "matmul",
"transposed", "im2col", "argmax", "live", "eigen", "taps", "fused"); every choice gives XLA's
numbers, gradients included. It travels from `config.paths` through the registry to each
`ConvUnit` and `MaxPool`, which call its dispatchers. What each kind and choice does, and how
to add one: docs/paths.md; what each is worth: docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from bottleneck.util import errors, validation

CHOICES = {
    "conv_1x1": ("auto", "xla", "matmul"), "conv_kx1": ("auto", "xla", "transposed"),
    "conv_strided": ("auto", "xla", "im2col"), "max_pool": ("auto", "xla", "argmax"),
    "conv_taps": ("auto", "xla", "live"), "conv_library": ("auto", "xla", "eigen"),
    "conv_depthwise": ("auto", "xla", "taps"), "norm": ("auto", "xla", "fused")
}
KINDS = tuple(CHOICES)
# A padding: "SAME" or "VALID" (XLA's), or explicit ((top, bottom), (left, right)) pixels, as
# PyTorch and Caffe pad (`explicit_padding`).
Padding = str | tuple[tuple[int, int], tuple[int, int]]
# "auto" on each backend: the paths that were faster than XLA's op there, block by block
# (docs/benchmarks.md: the CPU's sections, and "GPU: one NVIDIA H200"). A path that lost, was
# mixed or was not timed on a backend stays XLA's op there; on the CPU, the stride-2 im2col
# lost to XLA's own strided convolutions and holds more memory, so it stays off.
AUTO = {
    "cpu": {
        "conv_1x1": "matmul", "conv_kx1": "transposed", "conv_strided": "xla", "max_pool": "argmax",
        "conv_taps": "live", "conv_library": "eigen", "conv_depthwise": "taps"
    },
    "gpu": {"conv_1x1": "matmul"},
}

# XLA's CPU compiler option listing the kinds of op it hands to YNNPACK. jax 0.10's default
# list is matmuls, convolutions and reductions; "eigen" is that list less the convolutions.
# (tests/nn/test_paths.py checks it against the default of the installed jax.)
_YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
_LIBRARY_OPTIONS = {
    "eigen": {_YNN_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
}


def resolve(kind: str, choice: str, where: str = "paths") -> str:
  """`choice` for op `kind` (a key of CHOICES), with "auto" made concrete."""
  validation.choice(choice, kind, CHOICES[kind], where)
  if kind == "conv_library":
    return _resolve_library(choice, where)
  if choice != "auto":
    return choice
  return AUTO.get(jax.default_backend(), {}).get(kind, "xla")


def _resolve_library(choice: str, where: str) -> str:
  backend = jax.default_backend()
  concrete = AUTO.get(backend, {}).get("conv_library", "xla") if choice == "auto" else choice
  if concrete == "xla":
    return concrete
  if backend != "cpu":
    raise errors.ConfigError(
        f"{where}: conv_library={choice!r} chooses between libraries of XLA's CPU backend, "
        f"and this backend is {backend!r}; valid here: 'auto', 'xla'.")
  if not _library_option_works(concrete):
    if choice == "auto":  # this jax's XLA has no such option: its default it is
      return "xla"
    raise errors.ConfigError(
        f"{where}: conv_library={choice!r} needs XLA's CPU option {_YNN_OPTION!r}, which "
        f"jax {jax.__version__} does not accept; valid here: 'auto', 'xla'.")
  return concrete


@functools.cache
def _library_option_works(choice: str) -> bool:
  """Whether this jax compiles a convolution with the compiler options of `choice`."""
  conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME")
  x = jax.ShapeDtypeStruct((1, 1, 3, 3), jnp.float32)
  try:
    jax.jit(conv, compiler_options=_LIBRARY_OPTIONS[choice]).lower(x, x).compile()
  except Exception:  # any refusal means: not on this jax
    return False
  return True


def compiler_options(conv_library: str = "auto", where: str = "paths") -> dict | None:
  """The `compiler_options` of a `jax.jit` computing our models with `conv_library`.

  None for XLA's default ("xla", or "auto" where nothing faster was measured); give it to
  `jax.jit(fn, compiler_options=...)`. A convolution's numbers are the same either way.
  """
  concrete = resolve("conv_library", conv_library, where)
  return None if concrete == "xla" else dict(_LIBRARY_OPTIONS[concrete])


@dataclasses.dataclass(frozen=True)
class Paths:
  """How every op of a network is computed: one choice per kind (CHOICES), "auto" by default.

  Frozen and hashable, so modules keep it as a static attribute. `resolve()` makes "auto"
  concrete for this backend; the dispatchers `conv` and `max_pooling` act on resolved choices.
  """
  conv_1x1: str = "auto"
  conv_kx1: str = "auto"
  conv_strided: str = "auto"
  max_pool: str = "auto"
  conv_taps: str = "auto"
  conv_library: str = "auto"
  conv_depthwise: str = "auto"
  norm: str = "auto"

  def __post_init__(self):
    for kind in KINDS:
      validation.choice(getattr(self, kind), kind, CHOICES[kind], "paths")

  @classmethod
  def parse(cls, spec: str) -> Paths:
    """Paths from "BASE[,kind=choice...]": BASE ("auto" or "xla") for every kind, then
    overrides, e.g. "xla,max_pool=argmax" (only the max pool changed from XLA's op)."""
    base, *overrides = [part.strip() for part in spec.split(",")]
    validation.choice(base, "path base", ("auto", "xla"), f"paths {spec!r}")
    choices = dict.fromkeys(KINDS, base)
    for item in overrides:
      kind, sep, choice = item.partition("=")
      if not sep:
        raise errors.ConfigError(f"paths {spec!r}: {item!r} is not kind=choice.")
      validation.choice(kind, "path kind", CHOICES, f"paths {spec!r}")
      choices[kind] = validation.choice(choice, kind, CHOICES[kind], f"paths {spec!r}")
    return cls(**choices)

  def as_dict(self) -> dict[str, str]:
    return dataclasses.asdict(self)

  def resolve(self, where: str = "paths") -> Paths:
    """These paths with every "auto" made concrete for the default backend."""
    return Paths(**{k: resolve(k, v, where) for k, v in self.as_dict().items()})

  def compiler_options(self, where: str = "paths") -> dict | None:
    """The `compiler_options` of a `jax.jit` computing with these paths (`compiler_options`)."""
    return compiler_options(self.conv_library, where)

  def for_counting(self) -> Paths:
    """These paths with every conv one XLA conv of its whole input, as the accounting counts
    them: every kernel tap (the MAC convention), and the input as it is, not its patches or a
    reshaped or transposed copy (the accounting reads a conv's shapes)."""
    return dataclasses.replace(self, conv_1x1="xla", conv_kx1="xla", conv_strided="xla",
                               conv_taps="xla", conv_depthwise="xla")

  def conv_path(self, in_hw: Sequence[int], kernel_hw: Sequence[int], strides: Sequence[int],
                padding: Padding) -> str:
    """Which formulation `conv` takes for this geometry: "live" (live taps only), "matmul",
    "im2col", "transposed" or "xla". A path applies only where its op is: a matmul for a
    stride-1 1x1, im2col for a stride above 1, and so on; elsewhere XLA's conv."""
    kernel_hw, strides = tuple(kernel_hw), tuple(strides)
    if (self.conv_taps == "live" and strides == (1, 1) and padding == "SAME" and kernel_hw != (1, 1)
        and any(in_hw[a] < kernel_hw[a] for a in (0, 1))):
      return "live"
    if (self.conv_1x1 == "matmul" and kernel_hw == (1, 1) and strides == (1, 1)
        and (isinstance(padding, str) or padding == ((0, 0), (0, 0)))):
      return "matmul"
    if self.conv_strided == "im2col" and strides != (1, 1):
      return "im2col"
    if self.conv_kx1 == "transposed" and kernel_hw[0] > 1 and kernel_hw[1] == 1:
      return "transposed"
    return "xla"

  def conv(self, x: jax.Array, kernel: jax.Array, strides: Sequence[int],
           padding: Padding) -> jax.Array:
    """A conv (NHWC input, HWIO kernel, no bias) computed the way these paths say."""
    strides = tuple(strides)
    path = self.conv_path(x.shape[1:3], kernel.shape[:2], strides, padding)
    y = conv_live_taps(x, kernel) if path == "live" else None
    if y is not None:
      return y
    if path == "matmul":
      return conv_1x1_matmul(x, kernel)
    if path == "im2col":
      return conv_im2col(x, kernel, strides, padding)
    if path == "transposed":
      return conv_kx1_transposed(x, kernel, strides, padding)
    return lax.conv_general_dilated(x, kernel, strides, padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def depthwise_conv(self, x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                     padding: Padding) -> jax.Array:
    """A depthwise conv (NHWC input, HWIO kernel of shape (kh, kw, 1, channels)) computed the
    way these paths say."""
    if self.conv_depthwise == "taps":
      return conv_depthwise_taps(x, kernel, tuple(strides), padding)
    return lax.conv_general_dilated(x, kernel, tuple(strides), padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=x.shape[-1])

  def max_pooling(self, x: jax.Array, window: Sequence[int], strides: Sequence[int],
                  padding: Padding) -> jax.Array:
    """Max pooling (NHWC) computed the way these paths say; the values are XLA's. Padded taps
    are -inf: they never win."""
    if self.max_pool == "argmax":
      return max_pool_argmax(x, tuple(window), tuple(strides), padding)
    return _reduce_max(x, window, strides, padding)


# The name every layer gives its output (`kept`), and the argmax pool its indices: what the
# memory accounting (`bottleneck.measure.complexity.saved_bytes`) counts as held for the
# backward pass.
LAYER_OUTPUT = "layer_output"


def kept(x: jax.Array) -> jax.Array:
  """`x`, named as held for the backward pass (`LAYER_OUTPUT`); an identity that costs
  nothing."""
  return checkpoint_name(x, LAYER_OUTPUT)


def conv_depthwise_taps(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                        padding: Padding) -> jax.Array:
  """A depthwise conv as the sum over its kernel taps of a strided view of the padded input
  times that tap's per-channel weight, in XLA's order of taps (row by row)."""
  kh, kw = kernel.shape[:2]
  pads = [
      window_geometry(x.shape[1 + a], (kh, kw)[a], strides[a], axis_padding(padding, a))[:2]
      for a in (0, 1)
  ]
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  out_h = (xp.shape[1] - kh) // strides[0] + 1
  out_w = (xp.shape[2] - kw) // strides[1] + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      view = lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + (out_h - 1) * strides[0] + 1, j +
                                          (out_w - 1) * strides[1] + 1, xp.shape[3]),
                       (1, *strides, 1))
      term = view * kernel[i, j, 0]
      out = term if out is None else out + term
  return out


def _reduce_max(x, window, strides, padding: Padding):
  pads = padding if isinstance(padding, str) else ((0, 0), *padding, (0, 0))
  # A Python -inf, not an array: JAX then sees a windowed max, which it can differentiate.
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1), pads)


def explicit_padding(padding) -> Padding:
  """`padding` as conv units and pools keep it: "SAME" / "VALID" as they are; an int p or a
  pair (ph, pw) as symmetric explicit padding ((p, p), (p, p)), as PyTorch and Caffe pad."""
  if isinstance(padding, str):
    return padding
  if isinstance(padding, int) and not isinstance(padding, bool):
    padding = (padding, padding)
  ph, pw = padding
  return ((ph, ph), (pw, pw))


def axis_padding(padding: Padding, a: int):
  """Axis `a`'s padding: the string itself, or its (before, after) pair."""
  return padding if isinstance(padding, str) else tuple(padding[a])


def ceil_padding(size: int, window: int, stride: int, pad: int = 0) -> tuple[int, int]:
  """(before, after) padding that gives a pool ceil-mode rounding (PyTorch `ceil_mode=True`,
  Caffe's pooling): ceil((size + 2 pad - window) / stride) + 1 outputs, less the last one if
  it would start in the padding after the input. The extra pixels after are -inf."""
  out = -(-(size + 2 * pad - window) // stride) + 1
  if (out - 1) * stride >= size + pad:
    out -= 1
  return pad, max(0, (out - 1) * stride + window - size - pad)


def conv_1x1_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-1 1x1 conv (NHWC input, HWIO kernel of shape (1, 1, C, D)) as a matmul."""
  return jnp.einsum("bhwc,cd->bhwd", x, kernel[0, 0])


def conv_kx1_transposed(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                        padding: Padding) -> jax.Array:
  """A (k, 1) conv (NHWC, HWIO) as the (1, k) conv of the height/width-swapped map."""
  y = lax.conv_general_dilated(x.transpose(0, 2, 1, 3), kernel.transpose(1, 0, 2, 3),
                               tuple(strides)[::-1],
                               padding if isinstance(padding, str) else tuple(padding)[::-1],
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y.transpose(0, 2, 1, 3)


def window_geometry(size: int, window: int, stride: int, padding):
  """(pad before, pad after, output size) of one spatial axis, as XLA's SAME / VALID give it,
  or for an explicit (before, after) pair."""
  if not isinstance(padding, str):
    before, after = padding
    return before, after, (size + before + after - window) // stride + 1
  if padding == "VALID":
    return 0, 0, (size - window) // stride + 1
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return total // 2, total - total // 2, out


def live_taps(size: int, window: int) -> tuple[int, int, int, int]:
  """(first tap, end tap, pad before, pad after) of a stride-1 SAME window of `window` taps
  over `size` pixels, keeping only the taps that touch a real pixel for some output."""
  before = (window - 1) // 2  # XLA's SAME at stride 1: total window - 1, the odd one after
  first, end = max(0, before - size + 1), min(window, before + size)
  return first, end, before - first, end - 1 - before


def conv_live_taps(x: jax.Array, kernel: jax.Array) -> jax.Array | None:
  """A stride-1 SAME conv (NHWC, HWIO) with only its live taps (`live_taps`), or None where
  every tap is live. The dropped taps would only multiply zero padding: the same numbers."""
  (t0, t1, b0, a0), (u0, u1, b1, a1) = (live_taps(x.shape[1 + a], kernel.shape[a]) for a in (0, 1))
  if (t1 - t0, u1 - u0) == kernel.shape[:2]:
    return None
  kernel = kernel[t0:t1, u0:u1]
  if kernel.shape[:2] == (1, 1):
    return conv_1x1_matmul(x, kernel)
  return lax.conv_general_dilated(x, kernel, (1, 1), ((b0, a0), (b1, a1)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _window_views(x, window, strides, padding, fill):
  """The window's taps as strided views of the `fill`-padded input, row-major."""
  geom = [
      window_geometry(x.shape[1 + a], window[a], strides[a], axis_padding(padding, a))
      for a in (0, 1)
  ]
  xp = lax.pad(x, jnp.array(fill, x.dtype), [(0, 0, 0), (geom[0][0], geom[0][1], 0),
                                             (geom[1][0], geom[1][1], 0), (0, 0, 0)])
  (_, _, oh), (_, _, ow) = geom
  views = [
      lax.slice(xp, (0, i, j, 0), (x.shape[0], i + (oh - 1) * strides[0] + 1, j +
                                   (ow - 1) * strides[1] + 1, x.shape[3]),
                (1, strides[0], strides[1], 1)) for i in range(window[0]) for j in range(window[1])
  ]
  return views


def conv_im2col(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                padding: Padding) -> jax.Array:
  """A conv (NHWC, HWIO) as one matmul of its patches: equal to XLA's, another speed."""
  kh, kw, c, d = kernel.shape
  patches = jnp.concatenate(_window_views(x, (kh, kw), strides, padding, 0), axis=-1)
  return jnp.einsum("bhwk,kd->bhwd", patches, kernel.reshape(kh * kw * c, d))


def _argmax_pool(x, window, strides, padding):
  """Each window's maximum and the index of its first maximum (row-major tap order)."""
  views = _window_views(x, window, strides, padding, -jnp.inf)
  index_dtype = jnp.int8 if len(views) <= 127 else jnp.int32
  best, index = views[0], jnp.zeros(views[0].shape, index_dtype)
  for n, view in enumerate(views[1:], 1):
    better = view > best  # strictly greater: ties stay with the first maximum
    best = jnp.where(better, view, best)
    index = jnp.where(better, jnp.asarray(n, index_dtype), index)
  return best, index


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool_argmax(x: jax.Array, window: Sequence[int], strides: Sequence[int],
                    padding: Padding) -> jax.Array:
  """Max pool (NHWC) equal to `reduce_window` max, with a gradient through the argmax.

  The forward (without a gradient) is XLA's `reduce_window`. Under differentiation, the forward
  also keeps each window's first-maximum index, and the backward gives every input pixel the
  output gradients of the windows that chose it: for each of the window's taps, one shifted
  view of the (stride-dilated, padded) output gradient, where the index names that tap. All of
  it is element-wise, which XLA fuses into one pass, where `select_and_scatter` walks windows.
  """
  return _reduce_max(x, window, strides, padding)


def _max_pool_fwd(x, window, strides, padding):
  best, index = _argmax_pool(x, window, strides, padding)
  return best, (kept(index), x.shape)


def _max_pool_bwd(window, strides, padding, residuals, g):
  index, shape = residuals
  geom = [
      window_geometry(shape[1 + a], window[a], strides[a], axis_padding(padding, a)) for a in (0, 1)
  ]
  padded = [geom[a][0] + shape[1 + a] + geom[a][1] for a in (0, 1)]
  # Dilate the output grid by the stride, then pad by window - 1 before and up to the padded
  # input's size after: position r of the padded input reads tap t of the window at r - t.
  config = [(0, 0, 0)] + [(window[a] - 1, padded[a] -
                           ((geom[a][2] - 1) * strides[a] + 1), strides[a] - 1)
                          for a in (0, 1)] + [(0, 0, 0)]
  g_pad = lax.pad(g, jnp.array(0, g.dtype), config)
  i_pad = lax.pad(index, jnp.array(-1, index.dtype), config)
  dx = None
  for n in range(math.prod(window)):
    i, j = divmod(n, window[1])
    start = (0, window[0] - 1 - i, window[1] - 1 - j, 0)
    limit = (shape[0], start[1] + padded[0], start[2] + padded[1], shape[3])
    term = jnp.where(lax.slice(i_pad, start, limit) == n, lax.slice(g_pad, start, limit), 0)
    dx = term if dx is None else dx + term
  return (dx[:, geom[0][0]:geom[0][0] + shape[1], geom[1][0]:geom[1][0] + shape[2]],)


max_pool_argmax.defvjp(_max_pool_fwd, _max_pool_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm_fused(y: jax.Array, scale: jax.Array, offset: jax.Array, epsilon: float,
                     relu: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Train-mode batch norm over every axis but the last, then ReLU if `relu`, in the fewest
  passes over `y`: one for the statistics, one for normalise-and-ReLU; the backward one for its
  two sums and one for the input's gradient (XLA's autodiff of `nnx.BatchNorm` takes three to
  four more each way: a bias added as its own pass, the centred map written out, more sums).

  Returns (output, batch mean, batch variance), the statistics in float32 (or wider) as
  `nnx.BatchNorm` computes them (the variance the biased E[y^2] - E[y]^2, at least 0; the
  output in `y`'s dtype), for the running averages. The same numbers as `nnx.BatchNorm` then
  `nnx.relu` to rounding, gradients included (tests/nn/test_paths.py); gradients through the
  statistics outputs are exact too.
  """
  return _bn_forward(y, scale, offset, epsilon, relu)[0]


def _stats_dtype(y: jax.Array):
  """float32, or wider where `y` is (as `nnx.BatchNorm` promotes its statistics)."""
  return jnp.promote_types(y.dtype, jnp.float32)


def _bn_sums(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  axes = tuple(range(a.ndim - 1))
  return jnp.sum(a, axes), jnp.sum(b, axes)


def _bn_forward(y, scale, offset, epsilon, relu):
  n = y.size // y.shape[-1]
  f = _stats_dtype(y)
  y32 = y.astype(f)
  s1, s2 = _bn_sums(y32, y32 * y32)
  mean = s1 / n
  var = jnp.maximum(s2 / n - mean * mean, 0.0)
  inv = lax.rsqrt(var + epsilon)
  a = scale.astype(f) * inv
  out = y32 * a + (offset.astype(f) - mean * a)
  if relu:
    out = jnp.maximum(out, 0.0)
  out = out.astype(y.dtype)
  return (out, mean, var), (y, out, mean, inv, scale, offset)


def _bn_bwd(epsilon, relu, residuals, cotangents):
  del epsilon
  y, out, mean, inv, scale, offset = residuals
  g, g_mean, g_var = cotangents
  n = y.size // y.shape[-1]
  f = _stats_dtype(y)
  g = g.astype(f)
  if relu:
    g = jnp.where(out > 0, g, 0.0)
  centred = y.astype(f) - mean
  g_offset, g_centred = _bn_sums(g, g * centred)
  g_scale = g_centred * inv
  a = scale.astype(f) * inv
  # d out / d y through the batch statistics too; then what the statistics outputs pass back.
  dy = (a * g - (a / n) * g_offset - (a * inv * g_scale / n) * centred + g_mean / n +
        (2 * g_var / n) * centred)
  return dy.astype(y.dtype), g_scale.astype(scale.dtype), g_offset.astype(offset.dtype)


batch_norm_fused.defvjp(_bn_forward, _bn_bwd)
