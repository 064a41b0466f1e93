"""Inception blocks with 1x1 reductions ("reduced") and without them ("naive").

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

Every block takes the same three things besides its widths: a `Reduction` (whether the 1x1
reductions exist, their width, their activation), a `ConvStyle` (how every conv unit is built
and computed) and `rngs`. Reduction widths are the published ones unless `Reduction.ratio` is
given, in which case every reduction is `max(1, round(ratio * in_features))` wide.
`Reduction(activation=False)` makes the reductions linear ("linear bottleneck").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from bottleneck.nn.layers import ConvStyle, kept
from bottleneck.util import errors, validation

# Where a block may put a 1x1 reduction: before its 3x3, 5x5 (GoogLeNet's "5x5" branch,
# whatever its kernel) or 7x7 (Inception-v3's factorized 7x7s) convs, or as the projection
# after its pool branch's pool ("pool": GoogLeNet's "pool proj", absent from the naive module).
PLACES = ("3x3", "5x5", "7x7", "pool")


def _parse_places(value) -> tuple[str, ...]:
  if isinstance(value, str):
    value = [p.strip() for p in value.split(",") if p.strip()]
  places = tuple(value)
  for p in places:
    validation.choice(p, "reduction place", PLACES, "reduction")
  return tuple(p for p in PLACES if p in places)  # canonical order, no repeats


def _parse_ratios(value) -> tuple[tuple[str, float], ...]:
  if isinstance(value, str):
    pairs = []
    for item in (i.strip() for i in value.split(",") if i.strip()):
      place, sep, number = item.partition("=")
      try:
        pairs.append((place.strip(), float(number)))
      except ValueError:
        sep = ""
      if not sep:
        raise errors.ConfigError(
            f"reduction: reduction_ratios={value!r} is invalid; write place=ratio pairs, "
            "e.g. '3x3=0.25,5x5=0.5'.")
    value = pairs
  items = dict(value.items() if isinstance(value, dict) else value)
  for place, r in items.items():
    validation.choice(place, "reduction place", PLACES[:3], "reduction")
    validation.ratio(r, f"reduction_ratios[{place}]", "reduction")
  return tuple(sorted((p, float(r)) for p, r in items.items()))


def variant(reduce: bool) -> str:
  """The one label of a network or block with its 1x1 reductions ("reduced") or without them
  ("naive"), in every table, plot and report."""
  return "reduced" if reduce else "naive"


@dataclasses.dataclass(frozen=True)
class Reduction:
  """The 1x1 reductions of a network's blocks: one value that every block receives.

  enabled: the reduced variant (True) or the naive one (False: no 1x1 before a larger conv).
  ratio: None for the published widths; else every reduction is `max(1, round(ratio *
    in_features))` wide, in (0, 1].
  activation: ReLU after each reduction (False: a "linear bottleneck").
  places: which reductions the reduced variant has (`PLACES`; a tuple or "3x3,5x5"); a branch
    whose place is left out is built as in the naive variant. Default: all.
  ratios: per-place ratios that override `ratio` ("3x3=0.25,5x5=0.5", a dict, or pairs).
  """
  enabled: bool = True
  ratio: float | None = None
  activation: bool = True
  places: tuple[str, ...] | str = PLACES
  ratios: tuple[tuple[str, float], ...] | str = ()

  def __post_init__(self):
    if self.ratio is not None:
      validation.ratio(self.ratio, "reduction_ratio", "reduction")
    object.__setattr__(self, "places", _parse_places(self.places))
    object.__setattr__(self, "ratios", _parse_ratios(self.ratios))

  def at(self, place: str) -> bool:
    """Whether the reduction at `place` is built."""
    return self.enabled and place in self.places

  def width(self, published, in_features: int, field: str, where: str, place: str = "3x3") -> int:
    """The width of reduction `field` (at `place`) of block `where`, whose paper gives
    `published` (or RATIO_ONLY: none)."""
    ratio = dict(self.ratios).get(place, self.ratio)
    if ratio is not None:
      return max(1, round(ratio * in_features))
    if published is RATIO_ONLY:
      raise errors.ConfigError(
          f"{where}: the reduced variant has no published reduction width here; "
          "give reduction_ratio in (0, 1].")
    return validation.positive_int(published, field, where)


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
    return kept(jnp.concatenate([b(x) for b in self.branches], axis=-1))


class InceptionBase(nnx.Module):
  """Common machinery: construction, branches, reduction widths, the forward pass.

  A block is `Block(in_features, *widths, reduction=..., style=..., rngs=..., name=...)`;
  subclasses only say what their branches are (`branches(*widths)`, returning the
  (module, channels) pairs and the display order of the widths).
  """

  kind = "inception"
  default_name = "inception"

  def __init__(self, in_features: int, *widths, reduction: Reduction = Reduction(),
               style: ConvStyle = ConvStyle(), rngs: nnx.Rngs, name: str | None = None, **options):
    self.name = name = name or self.default_name
    self.in_features = validation.positive_int(in_features, "in_features", name)
    self.reduction = reduction
    self.reduce = reduction.enabled
    self._style = style
    self._rngs = rngs
    self._widths: dict[str, int] = {}
    branches, order = self.branches(*widths, **options)
    self.body = Concat([b for b, _ in branches])
    self.out_features = sum(c for _, c in branches)
    keys = [k for k in order if k in self._widths] + [k for k in self._widths if k not in order]
    # (name, width) pairs, in display order; a tuple so that nnx keeps it static and ordered.
    self.widths = tuple((k, self._widths[k]) for k in keys)
    del self._style, self._rngs, self._widths

  def branches(self, *widths, **options):
    raise NotImplementedError

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.body(x)

  def _width(self, key: str, value) -> int:
    self._widths[key] = validation.positive_int(value, key, self.name)
    return value

  def _pool_projection(self, features: int):
    """Inception-v3's pool branch: 3x3/1 average pool, then a 1x1 conv (in both variants)."""
    return (nnx.Sequential(self._style.avg_pool(3, 1),
                           self._branch("pool", None, [Conv(features, 1)])[0]), features)

  def _branch(self, tag: str, reduction: int | None, tail: Sequence[Conv | Split],
              place: str = "3x3"):
    """Builds one branch: a 1x1 reduction (if the reduced variant has one at `place`), then
    `tail`."""
    layers, c = [], self.in_features
    if reduction is not None and self.reduction.at(place):
      width = self.reduction.width(reduction, self.in_features, f"{tag} reduce", self.name, place)
      self._widths[f"{tag} reduce"] = width
      layers.append(
          self._style.unit(c, width, 1, activation=self.reduction.activation, rngs=self._rngs,
                           name=f"{self.name}/{tag}_reduce"))
      c = width
    for i, step in enumerate(tail):
      if isinstance(step, Split):
        layers.append(
            Concat([
                self._style.unit(c, s.features, s.kernel, strides=s.stride, padding=s.padding,
                                 rngs=self._rngs, name=f"{self.name}/{tag}_{i}_{j}")
                for j, s in enumerate(step.convs)
            ]))
        c = sum(s.features for s in step.convs)
      else:
        layers.append(
            self._style.unit(c, step.features, step.kernel, strides=step.stride,
                             padding=step.padding, rngs=self._rngs, name=f"{self.name}/{tag}_{i}"))
        c = step.features
    return nnx.Sequential(*layers), c


class GoogLeNetInception(InceptionBase):
  """GoogLeNet's Inception module: `GoogLeNetInception(in_features, n1x1, n3x3_reduce, n3x3,
  n5x5_reduce, n5x5, pool_proj, reduction=..., style=..., rngs=...)`, the Table 1 widths.

  Reduced: Fig. 2b. Naive (`Reduction(enabled=False)`): Fig. 2a, no reductions, the pool
  passed through. `branch5_kernel`: 5 as in the paper, 3 as in torchvision's `googlenet`.
  """

  def branches(self, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj, *,
               branch5_kernel: int = 5):
    validation.choice(branch5_kernel, "branch5_kernel", (3, 5), self.name)
    n1x1, n3x3, n5x5 = (
        self._width(k, v) for k, v in (("#1x1", n1x1), ("#3x3", n3x3), ("#5x5", n5x5)))
    branches = [
        self._branch("#1x1", None, [Conv(n1x1, 1)]),
        self._branch("#3x3", n3x3_reduce, [Conv(n3x3, 3)], "3x3"),
        self._branch("#5x5", n5x5_reduce, [Conv(n5x5, branch5_kernel)], "5x5")
    ]
    if self.reduction.at("pool"):
      self._width("pool proj", pool_proj)
      branches.append((nnx.Sequential(self._style.pool(3, 1),
                                      self._branch("pool", None,
                                                   [Conv(pool_proj, 1)])[0]), pool_proj))
    else:  # the naive module's pool branch: the pooled input itself
      branches.append((self._style.pool(3, 1), self.in_features))
    return branches, ("#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj"
                     )  # Table 1's column order


class InceptionV3A(InceptionBase):
  """Inception-v3 block A (35x35, paper Fig. 5): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | pool->1x1.
  Widths: `pool_features`."""

  default_name = "block_a"

  def branches(self, pool_features):
    self._width("pool proj", pool_features)
    return [
        self._branch("b1", None, [Conv(64, 1)]),
        self._branch("b5", 48, [Conv(64, 5)], "5x5"),
        self._branch("b3dbl", 64, [Conv(96, 3), Conv(96, 3)]),
        self._pool_projection(pool_features)
    ], ()


class InceptionV3ReductionA(InceptionBase):
  """35x35 -> 17x17: 3x3/2 | 1x1->3x3->3x3/2 | maxpool 3x3/2 (all strided ops VALID)."""

  kind = "reduction"
  default_name = "reduction_a"

  def branches(self):
    return [
        self._branch("b3", None, [Conv(384, 3, 2, "VALID")]),
        self._branch("b3dbl", 64, [Conv(96, 3), Conv(96, 3, 2, "VALID")]),
        (self._style.pool(3, 2, "VALID"), self.in_features)
    ], ()


class InceptionV3B(InceptionBase):
  """Inception-v3 block B (17x17, paper Fig. 6, n = 7). Widths: `channels_7x7` = c."""

  default_name = "block_b"

  def branches(self, channels_7x7):
    c = self._width("c (7x7 width)", channels_7x7)
    return [
        self._branch("b1", None, [Conv(192, 1)]),
        self._branch("b7", c, [Conv(c, (1, 7)), Conv(192, (7, 1))], "7x7"),
        self._branch(
            "b7dbl", c,
            [Conv(c, (7, 1)), Conv(c, (1, 7)),
             Conv(c, (7, 1)), Conv(192, (1, 7))], "7x7"),
        self._pool_projection(192)
    ], ()


class InceptionV3ReductionB(InceptionBase):
  """17x17 -> 8x8: 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool 3x3/2."""

  kind = "reduction"
  default_name = "reduction_b"

  def branches(self):
    return [
        self._branch("b3", 192, [Conv(320, 3, 2, "VALID")]),
        self._branch("b7", 192,
                     [Conv(192,
                           (1, 7)), Conv(192, (7, 1)),
                      Conv(192, 3, 2, "VALID")], "7x7"),
        (self._style.pool(3, 2, "VALID"), self.in_features)
    ], ()


class InceptionV3C(InceptionBase):
  """Inception-v3 block C (8x8, paper Fig. 7): 1x1 | 1x1->(1x3, 3x1) |
  1x1->3x3->(1x3, 3x1) | pool->1x1."""

  default_name = "block_c"

  def branches(self):
    split = Split((Conv(384, (1, 3)), Conv(384, (3, 1))))
    return [
        self._branch("b1", None, [Conv(320, 1)]),
        self._branch("b3", 384, [split]),
        self._branch("b3dbl", 448, [Conv(384, 3), split]),
        self._pool_projection(192)
    ], ()


class SmallInception(InceptionBase):
  """Zhang et al.'s I(c1, c3) = concat(C(1, c1), C(3, c3)); reduced: a 1x1 before the 3x3.
  Widths: `c1, c3`.

  There is no published reduction width; the reduced variant needs `Reduction.ratio`
  (`inception_small` gives 0.5).
  """

  default_name = "small_inception"

  def branches(self, c1, c3):
    c1, c3 = self._width("c1", c1), self._width("c3", c3)
    return [self._branch("b1", None, [Conv(c1, 1)]),
            self._branch("b3", RATIO_ONLY, [Conv(c3, 3)])], ()


class SmallDownsample(InceptionBase):
  """Zhang et al.'s D(c3) = concat(C(3, c3, stride 2), max pool 3x3/2); reduced: 1x1 first.
  Widths: `c3`."""

  kind = "reduction"
  default_name = "small_downsample"

  def branches(self, c3):
    c3 = self._width("c3", c3)
    return [
        self._branch("b3", RATIO_ONLY, [Conv(c3, 3, 2)]),
        (self._style.pool(3, 2, "SAME"), self.in_features)
    ], ()
