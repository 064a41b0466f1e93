"""Layers shared by every block: the conv unit, pooling, local response normalization, heads.

Everything is NHWC, takes `dtype` (compute) and `param_dtype`, and gets its randomness from the
`nnx.Rngs` it is given. Nothing here depends on the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from bottleneck.nn import paths as paths_lib
from bottleneck.nn.paths import Paths, kept
from bottleneck.util import errors, validation

# "SAME" or "VALID" (XLA's), or an int p / a pair (ph, pw): p pixels on both sides, as PyTorch
# and Caffe pad (SAME pads less before than after where the total is odd, e.g. a 7x7/2 conv).
Padding = str | int | tuple[int, int]


def _padding(padding: Padding, name: str):
  if isinstance(padding, str):
    return validation.choice(padding, "padding", ("SAME", "VALID"), name)
  pair = _pair(padding) if isinstance(padding, (int, tuple, list)) else None
  if pair is None or len(pair) != 2 or any(
      isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pair):
    raise errors.ConfigError(
        f"{name}: padding={padding!r} is invalid; valid: 'SAME', 'VALID', a whole number >= 0 "
        "or a pair of them.")
  return paths_lib.explicit_padding(pair)


def _pair(k: int | Sequence[int]) -> tuple[int, int]:
  return (k, k) if isinstance(k, int) else tuple(k)


@dataclasses.dataclass(frozen=True)
class ConvStyle:
  """How every conv unit and pool of a network is built: bias and batch-norm conventions,
  whether a padded average pool divides by the taps it pads (PyTorch's `count_include_pad`,
  its default; Keras and TensorFlow divide by the real taps only), precision, and the paths
  that compute them (`bottleneck.nn.paths.Paths`). `bn_momentum` is the weight of the old
  running statistics at each step (Flax's and Keras's convention, 0.99; PyTorch's momentum
  0.1 is 0.9 here): a short training needs a smaller one, or its running statistics are still
  mostly their initial values when it is evaluated."""
  use_bias: bool = True
  batch_norm: bool = False
  bn_use_scale: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3  # GoogLeNet's and Inception's; PyTorch's default 1e-5 (ResNet)
  avg_pool_count_pad: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  paths: Paths = Paths()

  def __post_init__(self):
    if not (isinstance(self.bn_momentum, (int, float)) and 0 <= self.bn_momentum < 1):
      raise errors.ConfigError(f"bn_momentum={self.bn_momentum!r} is invalid; it must be "
                               "a number in [0, 1) (the old statistics' weight per step).")

  def pool(self, window: int, stride: int, padding="SAME", ceil_mode: bool = False) -> MaxPool:
    """A max pool computed the way this style's paths say."""
    return MaxPool(window, stride, padding, paths=self.paths, ceil_mode=ceil_mode)

  def avg_pool(self, window: int, stride: int, padding="SAME") -> AvgPool:
    """An average pool with this style's convention for padded taps."""
    return AvgPool(window, stride, padding, count_pad=self.avg_pool_count_pad)

  def unit(self, in_features, out_features, kernel_size, *, rngs, name, **kwargs) -> ConvUnit:
    """A conv unit of this style (`kwargs`: strides, padding, activation)."""
    return ConvUnit(in_features, out_features, kernel_size, style=self, rngs=rngs, name=name,
                    **kwargs)


class ConvUnit(nnx.Module):
  """Conv -> optional batch norm -> optional ReLU, the building brick of every block.

  Args:
    in_features, out_features: channels in and out.
    kernel_size: an int or (height, width), e.g. (1, 7) for Inception-v3's factorized convs.
    strides: an int or a pair.
    padding: "SAME", "VALID", or p / (ph, pw) pixels on both sides (`Padding`).
    activation: ReLU after the conv (True), none (False: a "linear bottleneck"), or "relu6"
      (MobileNetV2's min(max(x, 0), 6)).
    groups: channel groups (`in_features` and `out_features` both divisible): `in_features`
      for a depthwise conv (MobileNetV2; computed as `style.paths.conv_depthwise` says). Other
      grouped convs are XLA's own.
    style: its conventions (`ConvStyle`): a learned bias in the conv (paper GoogLeNet: yes;
      batch-norm nets: no), batch norm after it, whether that learns a scale (torchvision: yes;
      Keras Inception-v3: no) and its epsilon, precision, and how the conv is computed
      (`style.paths`, "auto" made concrete here: same parameters, same numbers; the speed
      differs by backend).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size, *, strides=1,
               padding: Padding = "SAME", activation: bool | str = True,
               style: ConvStyle = ConvStyle(), groups: int = 1, rngs: nnx.Rngs, name: str = "conv"):
    validation.positive_int(in_features, "in_features", name)
    validation.positive_int(out_features, "out_features", name)
    validation.positive_int(groups, "groups", name)
    if in_features % groups or out_features % groups:
      raise errors.ConfigError(f"{name}: groups={groups} must divide in_features="
                               f"{in_features} and out_features={out_features}.")
    validation.choice(activation, "activation", (True, False, "relu6"), name)
    self.groups = groups
    self.kernel_size = _pair(kernel_size)
    for k in self.kernel_size:
      validation.positive_int(k, "kernel_size", name)
    self.in_features, self.out_features = in_features, out_features
    self.name = name  # its ops' name scope: in jaxprs, HLO and profiles, and per-conv accounting
    self.strides = _pair(strides)
    self.padding = _padding(padding, name)
    self.activation = activation
    self.paths = style.paths.resolve(name)
    self.conv = nnx.Conv(in_features, out_features, self.kernel_size, strides=self.strides,
                         padding=self.padding, feature_group_count=groups, use_bias=style.use_bias,
                         dtype=style.dtype, param_dtype=style.param_dtype, rngs=rngs)
    self.norm = (nnx.BatchNorm(out_features, use_scale=style.bn_use_scale, epsilon=style.bn_epsilon,
                               momentum=style.bn_momentum, dtype=style.dtype,
                               param_dtype=style.param_dtype, rngs=rngs)
                 if style.batch_norm else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    with jax.named_scope(self.name):
      conv = self.conv
      x, kernel, bias = nnx.nn.dtypes.promote_dtype(
          (x, conv.kernel[...], None if conv.bias is None else conv.bias[...]), dtype=conv.dtype)
      if self.groups == 1:
        x = self.paths.conv(x, kernel, self.strides, self.padding)
      elif self.groups == self.in_features == self.out_features:
        x = self.paths.depthwise_conv(x, kernel, self.strides, self.padding)
      else:
        x = lax.conv_general_dilated(x, kernel, self.strides, self.padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=self.groups)
      if (self.norm is not None and self.paths.norm == "fused"
          and not self.norm.use_running_average):
        return self._fused_norm(kept(x), bias)
      if bias is not None:
        x = x + bias
      x = kept(x)
      if self.norm is not None:
        x = kept(self.norm(x))
      if self.activation == "relu6":
        return kept(jax.nn.relu6(x))
      return kept(nnx.relu(x)) if self.activation else x

  def _fused_norm(self, y: jax.Array, bias: jax.Array | None) -> jax.Array:
    """Batch norm in train mode (then the activation) as one fused op of `y`, the conv's output
    before its bias (`paths.batch_norm_fused`). A bias before batch norm in train mode shifts
    the batch mean by itself and changes nothing else: it enters only the running mean, which
    is updated as `nnx.BatchNorm` updates it (its gradient is 0, as autodiff gives it to
    rounding)."""
    norm = self.norm
    ones, zeros = jnp.ones(y.shape[-1], jnp.float32), jnp.zeros(y.shape[-1], jnp.float32)
    scale = norm.scale[...] if norm.scale is not None else ones
    offset = norm.bias[...] if norm.bias is not None else zeros
    out, mean, var = paths_lib.batch_norm_fused(y, scale, offset, norm.epsilon, self.activation
                                                is True)
    if bias is not None:
      mean = mean + bias.astype(mean.dtype)
    m = norm.momentum
    norm.mean[...] = lax.stop_gradient(m * norm.mean[...] + (1 - m) * mean)
    norm.var[...] = lax.stop_gradient(m * norm.var[...] + (1 - m) * var)
    if self.activation == "relu6":
      return kept(jax.nn.relu6(kept(out)))
    return kept(out)


class MaxPool(nnx.Module):
  """Max pooling over a window (NHWC), computed by `Paths.max_pooling` (`bottleneck.nn.paths`):
  its gradient through XLA's `select_and_scatter` or through each window's argmax.

  `ceil_mode`: the output size rounds up (PyTorch's `ceil_mode=True`, Caffe's pooling), with
  `padding` "VALID" or p pixels: the last window may hang over the input's end.
  """

  def __init__(self, window: int = 3, stride: int = 2, padding: Padding = "SAME",
               paths: Paths = Paths(), ceil_mode: bool = False):
    self.window, self.stride = _pair(window), _pair(stride)
    self.padding = _padding(padding, "MaxPool")
    self.ceil_mode = bool(ceil_mode)
    if self.ceil_mode and self.padding == "SAME":
      raise errors.ConfigError("MaxPool: ceil_mode needs padding 'VALID' or explicit pixels.")
    self.paths = paths.resolve("MaxPool")

  def __call__(self, x):
    padding = self.padding
    if self.ceil_mode:
      pads = ((0, 0), (0, 0)) if padding == "VALID" else padding
      padding = tuple(
          paths_lib.ceil_padding(x.shape[1 + a], self.window[a], self.stride[a], pads[a][0])
          for a in (0, 1))
    return kept(self.paths.max_pooling(x, self.window, self.stride, padding))

  def output_size(self, size: int) -> int:
    """The output side for an input side `size` (0: no window fits)."""
    if self.ceil_mode:
      pad = 0 if self.padding == "VALID" else self.padding[0][0]
      before, after = paths_lib.ceil_padding(size, self.window[0], self.stride[0], pad)
      padding = (before, after)
    else:
      padding = paths_lib.axis_padding(self.padding, 0)
    return max(0, paths_lib.window_geometry(size, self.window[0], self.stride[0], padding)[2])


class AvgPool(nnx.Module):
  """Average pooling over a window (NHWC). With `count_pad` (PyTorch's default) a padded window
  is divided by its full size, the padded taps counting as zeros; without it (Keras,
  TensorFlow) by the number of real taps.

  `ceil_mode` (padding "VALID" only): the output size rounds up as `MaxPool`'s does, and the
  last window, hanging over the input's end, is divided by its real taps (Caffe's and
  PyTorch's ceil-mode average)."""

  def __init__(self, window: int = 3, stride: int = 1, padding: Padding = "SAME",
               count_pad: bool = True, ceil_mode: bool = False):
    self.window, self.stride, self.padding = _pair(window), _pair(stride), padding
    self.count_pad = count_pad
    self.ceil_mode = bool(ceil_mode)
    if self.ceil_mode and padding != "VALID":
      raise errors.ConfigError(f"AvgPool: ceil_mode needs padding 'VALID'; got {padding!r}.")

  def _geometry(self, shape):
    if not self.ceil_mode:
      return self.padding, self.count_pad
    pads = tuple(paths_lib.ceil_padding(shape[a], self.window[a], self.stride[a]) for a in (0, 1))
    return pads, False  # the overhang is not the input's: never counted

  def __call__(self, x):
    padding, count_pad = self._geometry(x.shape[1:3])
    return kept(nnx.avg_pool(x, self.window, self.stride, padding, count_include_pad=count_pad))

  def output_size(self, size: int) -> int:
    """The output side for an input side `size` (0: no window fits)."""
    padding = self._geometry((size, size))[0]
    padding = paths_lib.axis_padding(padding, 0)
    return max(0, paths_lib.window_geometry(size, self.window[0], self.stride[0], padding)[2])


class LocalResponseNorm(nnx.Module):
  """Cross-channel local response normalization (AlexNet; used by the paper's GoogLeNet).

  y = x / (k + alpha / size * sum_{window of `size` channels} x^2) ** beta, as in
  torch.nn.LocalResponseNorm. It has no parameters and no multiply-adds in our convention.
  """

  def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

  def __call__(self, x):
    lo = self.size // 2
    hi = self.size - 1 - lo
    # A Python 0 lets JAX see a windowed sum (which it can differentiate); an array init makes
    # it a generic reduce_window, which it cannot.
    sq_sum = jax.lax.reduce_window(x * x, 0.0, jax.lax.add, (1, 1, 1, self.size), (1, 1, 1, 1),
                                   ((0, 0), (0, 0), (0, 0), (lo, hi)))
    return kept(x / (self.k + self.alpha / self.size * sq_sum)**self.beta)


class ClassifierHead(nnx.Module):
  """Global average pool -> dropout -> dense, the head of every network here."""

  def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.0, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    validation.positive_int(num_classes, "num_classes", "classifier head")
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.dense = nnx.Linear(in_features, num_classes, dtype=dtype, param_dtype=param_dtype,
                            rngs=rngs)

  def __call__(self, x):
    x = kept(jnp.mean(x, axis=(1, 2)))
    return kept(self.dense(self.dropout(x)))


class ConvClassifier(nnx.Module):
  """A classifier that is a convolution (SqueezeNet's, NiN's): dropout -> 1x1 conv to the
  classes (the style's unit: bias and ReLU in theirs) -> global average pool."""

  def __init__(self, in_features: int, num_classes: int, *, dropout: float, style: ConvStyle,
               rngs: nnx.Rngs):
    validation.positive_int(num_classes, "num_classes", "classifier")
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.conv = style.unit(in_features, num_classes, 1, rngs=rngs, name="classifier")

  def __call__(self, x):
    return kept(jnp.mean(self.conv(self.dropout(x)), axis=(1, 2)))


def batch_norms(module: nnx.Module) -> list[nnx.BatchNorm]:
  """The batch-norm layers of `module`, in a fixed order (training's precise statistics and
  the score maps' calibration set theirs)."""
  return [m for _, m in nnx.iter_modules(module) if isinstance(m, nnx.BatchNorm)]
