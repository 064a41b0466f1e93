"""Inception blocks with (`reduce=True`) and without (`reduce=False`, "naive") 1x1 reductions.

Every block is a set of parallel branches whose outputs are concatenated on the channel axis.
A branch is a chain of conv units; a branch may start with a 1x1 *reduction* that exists only
in the reduced variant. In the naive variant that 1x1 is removed and the conv after it reads
the block input directly. This one rule gives:

- GoogLeNet (Szegedy et al. 2014, Fig. 2): reduced = Fig. 2b. Naive = Fig. 2a, where the pool
  branch also loses its projection and passes the input through, so the block outputs
  `in_features + n1x1 + n3x3 + n5x5` channels.
- Inception-v3 blocks A, B, C and the two grid reductions (Szegedy et al. 2015): every 1x1
  that only feeds a larger conv is removed; 1x1 branches and pool projections stay.
- Zhang et al. (2017) small-Inception modules: the paper's modules have no reductions (naive);
  the reduced variant puts a 1x1 before each 3x3.

Reduction widths are the published ones unless `reduction_ratio` is given, in which case every
reduction is `max(1, round(reduction_ratio * in_features))` wide. `reduction_activation=False`
makes the reductions linear ("linear bottleneck").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from bottleneck import validation
from bottleneck.layers import AvgPool, ConvUnit, MaxPool


@dataclasses.dataclass(frozen=True)
class ConvStyle:
  """How every conv unit of a network is built (bias / batch norm conventions, precision)."""
  use_bias: bool = True
  batch_norm: bool = False
  bn_use_scale: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  conv_1x1: str = "auto"  # "xla" or "matmul": see bottleneck.kernels
  conv_kx1: str = "auto"  # "xla" or "transposed"
  conv_strided: str = "auto"  # "xla" or "im2col"
  max_pool: str = "auto"  # "xla" or "argmax": see bottleneck.kernels
  conv_taps: str = "auto"  # "xla" or "live"

  def pool(self, window: int, stride: int, padding: str = "SAME") -> MaxPool:
    """A max pool computed the way this style says."""
    return MaxPool(window, stride, padding, impl=self.max_pool)

  def unit(self, in_features, out_features, kernel_size, *, rngs, name, **kwargs) -> ConvUnit:
    return ConvUnit(in_features, out_features, kernel_size, use_bias=self.use_bias,
                    batch_norm=self.batch_norm, bn_use_scale=self.bn_use_scale,
                    conv_1x1=self.conv_1x1, conv_kx1=self.conv_kx1,
                    conv_strided=self.conv_strided, conv_taps=self.conv_taps, dtype=self.dtype,
                    param_dtype=self.param_dtype, rngs=rngs, name=name, **kwargs)


@dataclasses.dataclass(frozen=True)
class Conv:
  """One conv of a branch: `features` outputs, `kernel` size, stride and padding."""
  features: int
  kernel: int | tuple[int, int]
  stride: int = 1
  padding: str = "SAME"


@dataclasses.dataclass(frozen=True)
class Split:
  """Branch tail that applies several convs to the same input and concatenates them
  (Inception-v3 block C's 1x3 / 3x1 pair)."""
  convs: tuple[Conv, ...]


# Reduction width for blocks whose papers publish none: only `reduction_ratio` sets it.
RATIO_ONLY = "ratio_only"


class Concat(nnx.Module):
  """Applies each branch to the same input and concatenates the results on channels."""

  def __init__(self, branches: Sequence[nnx.Module]):
    self.branches = nnx.List(list(branches))

  def __call__(self, x):
    return jnp.concatenate([b(x) for b in self.branches], axis=-1)


class InceptionBase(nnx.Module):
  """Common machinery: branch construction, reduction widths, the forward pass."""

  kind = "inception"

  def __init__(self, in_features: int, *, reduce: bool, reduction_ratio: float | None,
               reduction_activation: bool, style: ConvStyle, rngs: nnx.Rngs, name: str):
    self.name = name
    self.in_features = validation.positive_int(in_features, "in_features", name)
    self.reduce = bool(reduce)
    self.reduction_ratio = (None if reduction_ratio is None else
                            validation.ratio(reduction_ratio, "reduction_ratio", name))
    self.reduction_activation = bool(reduction_activation)
    self._style = style
    self._rngs = rngs
    self._widths: dict[str, int] = {}

  def _width(self, key: str, value) -> int:
    self._widths[key] = validation.positive_int(value, key, self.name)
    return value

  def _branch(self, tag: str, reduction: int | None, tail: Sequence[Conv | Split]):
    """Builds one branch: optional 1x1 reduction (reduced variant only), then `tail`."""
    layers, c = [], self.in_features
    if reduction is not None and self.reduce:
      if self.reduction_ratio is not None:
        width = max(1, round(self.reduction_ratio * self.in_features))
      elif reduction is RATIO_ONLY:
        raise validation.ConfigError(
            f"{self.name}: the reduced variant has no published reduction width here; "
            "give reduction_ratio in (0, 1].")
      else:
        width = validation.positive_int(reduction, f"{tag} reduce", self.name)
      self._widths[f"{tag} reduce"] = width
      layers.append(self._style.unit(c, width, 1, activation=self.reduction_activation,
                                     rngs=self._rngs, name=f"{self.name}/{tag}_reduce"))
      c = width
    for i, step in enumerate(tail):
      if isinstance(step, Split):
        layers.append(Concat([
            self._style.unit(c, s.features, s.kernel, strides=s.stride, padding=s.padding,
                             rngs=self._rngs, name=f"{self.name}/{tag}_{i}_{j}")
            for j, s in enumerate(step.convs)]))
        c = sum(s.features for s in step.convs)
      else:
        layers.append(self._style.unit(c, step.features, step.kernel, strides=step.stride,
                                       padding=step.padding, rngs=self._rngs,
                                       name=f"{self.name}/{tag}_{i}"))
        c = step.features
    return nnx.Sequential(*layers), c

  def _finish(self, branches: Sequence[tuple[nnx.Module, int]], order: Sequence[str] = ()):
    self.body = Concat([b for b, _ in branches])
    self.out_features = sum(c for _, c in branches)
    keys = [k for k in order if k in self._widths] + [k for k in self._widths if k not in order]
    # (name, width) pairs, in display order; a tuple so that nnx keeps it static and ordered.
    self.widths = tuple((k, self._widths[k]) for k in keys)
    del self._style, self._rngs, self._widths

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.body(x)


class GoogLeNetInception(InceptionBase):
  """GoogLeNet's Inception module (paper Table 1 columns as arguments).

  Args:
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj: the Table 1 widths.
    reduce: reduced (Fig. 2b) or naive (Fig. 2a, no reductions, pool passed through).
    branch5_kernel: 5 as in the paper, 3 as in torchvision's `googlenet`.
  """

  def __init__(self, in_features, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj, *,
               reduce: bool = True, reduction_ratio: float | None = None,
               reduction_activation: bool = True, branch5_kernel: int = 5,
               style: ConvStyle = ConvStyle(), rngs: nnx.Rngs, name: str = "inception"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    validation.choice(branch5_kernel, "branch5_kernel", (3, 5), name)
    n1x1, n3x3, n5x5 = (self._width(k, v) for k, v in
                        (("#1x1", n1x1), ("#3x3", n3x3), ("#5x5", n5x5)))
    branches = [self._branch("#1x1", None, [Conv(n1x1, 1)])]
    if self.reduce:
      self._width("pool proj", pool_proj)
      branches += [
          self._branch("#3x3", n3x3_reduce, [Conv(n3x3, 3)]),
          self._branch("#5x5", n5x5_reduce, [Conv(n5x5, branch5_kernel)]),
          (nnx.Sequential(self._style.pool(3, 1),
                          self._branch("pool", None, [Conv(pool_proj, 1)])[0]), pool_proj)]
    else:
      branches += [self._branch("#3x3", None, [Conv(n3x3, 3)]),
                   self._branch("#5x5", None, [Conv(n5x5, branch5_kernel)]),
                   (self._style.pool(3, 1), self.in_features)]
    self._finish(branches, order=("#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5",
                                  "pool proj"))  # Table 1's column order


class InceptionV3A(InceptionBase):
  """Inception-v3 block A (35x35, paper Fig. 5): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | pool->1x1."""

  def __init__(self, in_features, pool_features, *, reduce=True, reduction_ratio=None,
               reduction_activation=True, style=ConvStyle(), rngs, name="block_a"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    self._width("pool proj", pool_features)
    self._finish([
        self._branch("b1", None, [Conv(64, 1)]),
        self._branch("b5", 48, [Conv(64, 5)]),
        self._branch("b3dbl", 64, [Conv(96, 3), Conv(96, 3)]),
        (nnx.Sequential(AvgPool(3, 1), self._branch("pool", None, [Conv(pool_features, 1)])[0]),
         pool_features)])


class InceptionV3ReductionA(InceptionBase):
  """35x35 -> 17x17: 3x3/2 | 1x1->3x3->3x3/2 | maxpool 3x3/2 (all strided ops VALID)."""

  kind = "reduction"

  def __init__(self, in_features, *, reduce=True, reduction_ratio=None,
               reduction_activation=True, style=ConvStyle(), rngs, name="reduction_a"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    self._finish([
        self._branch("b3", None, [Conv(384, 3, 2, "VALID")]),
        self._branch("b3dbl", 64, [Conv(96, 3), Conv(96, 3, 2, "VALID")]),
        (self._style.pool(3, 2, "VALID"), self.in_features)])


class InceptionV3B(InceptionBase):
  """Inception-v3 block B (17x17, paper Fig. 6, n = 7) with `channels_7x7` = c."""

  def __init__(self, in_features, channels_7x7, *, reduce=True, reduction_ratio=None,
               reduction_activation=True, style=ConvStyle(), rngs, name="block_b"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    c = self._width("c (7x7 width)", channels_7x7)
    self._finish([
        self._branch("b1", None, [Conv(192, 1)]),
        self._branch("b7", c, [Conv(c, (1, 7)), Conv(192, (7, 1))]),
        self._branch("b7dbl", c, [Conv(c, (7, 1)), Conv(c, (1, 7)), Conv(c, (7, 1)),
                                  Conv(192, (1, 7))]),
        (nnx.Sequential(AvgPool(3, 1), self._branch("pool", None, [Conv(192, 1)])[0]), 192)])


class InceptionV3ReductionB(InceptionBase):
  """17x17 -> 8x8: 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool 3x3/2."""

  kind = "reduction"

  def __init__(self, in_features, *, reduce=True, reduction_ratio=None,
               reduction_activation=True, style=ConvStyle(), rngs, name="reduction_b"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    self._finish([
        self._branch("b3", 192, [Conv(320, 3, 2, "VALID")]),
        self._branch("b7", 192, [Conv(192, (1, 7)), Conv(192, (7, 1)),
                                 Conv(192, 3, 2, "VALID")]),
        (self._style.pool(3, 2, "VALID"), self.in_features)])


class InceptionV3C(InceptionBase):
  """Inception-v3 block C (8x8, paper Fig. 7): 1x1 | 1x1->(1x3, 3x1) |
  1x1->3x3->(1x3, 3x1) | pool->1x1."""

  def __init__(self, in_features, *, reduce=True, reduction_ratio=None,
               reduction_activation=True, style=ConvStyle(), rngs, name="block_c"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    split = Split((Conv(384, (1, 3)), Conv(384, (3, 1))))
    self._finish([
        self._branch("b1", None, [Conv(320, 1)]),
        self._branch("b3", 384, [split]),
        self._branch("b3dbl", 448, [Conv(384, 3), split]),
        (nnx.Sequential(AvgPool(3, 1), self._branch("pool", None, [Conv(192, 1)])[0]), 192)])


class SmallInception(InceptionBase):
  """Zhang et al.'s I(c1, c3) = concat(C(1, c1), C(3, c3)); reduced: a 1x1 before the 3x3.

  There is no published reduction width; the reduced variant uses
  `reduction_ratio * in_features` (default 0.5).
  """

  def __init__(self, in_features, c1, c3, *, reduce=False, reduction_ratio=0.5,
               reduction_activation=True, style=ConvStyle(), rngs, name="small_inception"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    c1, c3 = self._width("c1", c1), self._width("c3", c3)
    self._finish([self._branch("b1", None, [Conv(c1, 1)]),
                  self._branch("b3", RATIO_ONLY, [Conv(c3, 3)])])


class SmallDownsample(InceptionBase):
  """Zhang et al.'s D(c3) = concat(C(3, c3, stride 2), max pool 3x3/2); reduced: 1x1 first."""

  kind = "reduction"

  def __init__(self, in_features, c3, *, reduce=False, reduction_ratio=0.5,
               reduction_activation=True, style=ConvStyle(), rngs, name="small_downsample"):
    super().__init__(in_features, reduce=reduce, reduction_ratio=reduction_ratio,
                     reduction_activation=reduction_activation, style=style, rngs=rngs,
                     name=name)
    c3 = self._width("c3", c3)
    self._finish([self._branch("b3", RATIO_ONLY, [Conv(c3, 3, 2)]),
                  (self._style.pool(3, 2, "SAME"), self.in_features)])
