"""The base of every network: a classifier made of named stages applied in order (`Network`),
and the width multiplier that scales a published network (`Widths`). Each family has its file:
`inception`, `resnet`, `squeezenet`, `mobilenet`, `nin`, `fc_head` (docs/architectures.md)."""

from __future__ import annotations

import jax
from flax import nnx

from bottleneck.util import errors, validation


def scaled(channels: int, width: float, extra: bool = False) -> int:
  """A published width times `width`, rounded, at least 1; one more with `extra`."""
  return max(1, round(channels * width)) + int(extra)


class Widths:
  """The widths a network scales: `round(c * width)` (at least 1), plus one channel for each of
  the first `extra` widths asked for, in construction order. `width` alone moves every layer
  at once, so the cost jumps where they round up together; `extra` moves them one at a time,
  so that `bottleneck.measure.complexity.match_width` can meet a budget between two such jumps."""

  def __init__(self, width: float, extra: int, where: str):
    self.width = validation.number(width, "width", where, above=0)
    self.extra = validation.whole(extra, "width_extra", where, 0)
    self.bases: list[int] = []  # the published widths asked for, in order
    self.where = where

  @property
  def count(self) -> int:
    return len(self.bases)

  def __call__(self, channels: int) -> int:
    self.bases.append(channels)
    return scaled(channels, self.width, self.count <= self.extra)

  def check(self) -> tuple[int, ...]:
    """The published widths scaled, in order (the network's `width_bases`: its channels at
    any width and extra follow from them, `scaled`); ConfigError if `extra` asked for more."""
    if self.extra > self.count:
      raise errors.ConfigError(
          f"{self.where}: width_extra={self.extra} is invalid; the network has {self.count} "
          f"widths to widen, so it must be a whole number in [0, {self.count}].")
    return tuple(self.bases)


class Network(nnx.Module):
  """A classifier made of named stages applied in order.

  Subclasses fill `self.stages` (an `nnx.List`) and `self.stage_names`, and set
  `min_image_size`: the smallest input side the network accepts. Every network takes a
  `Reduction` (its blocks' 1x1 reductions, `bottleneck.nn.blocks`) and a `ConvStyle` (how its
  conv units are built and computed) besides its own architecture arguments.
  """

  in_channels = 3

  def _init_common(self, name, *, num_classes, reduction, image_size, min_image_size):
    self.name = name
    self.num_classes = validation.positive_int(num_classes, "num_classes", name)
    self.reduction = reduction
    self.reduce = bool(reduction.enabled)
    self.min_image_size = min_image_size
    if isinstance(image_size, int) and image_size < min_image_size:
      raise errors.ConfigError(
          f"{name}: image_size={image_size} is too small; the minimum is {min_image_size}.")
    self.image_size = validation.positive_int(image_size, "image_size", name)
    self._names, self._stages = [], []

  def _add(self, name: str, stage: nnx.Module):
    self._names.append(name)
    self._stages.append(stage)
    return stage

  def _seal(self):
    self.stage_names = tuple(self._names)
    self.stages = nnx.List(self._stages)
    del self._names, self._stages

  def named_stages(self):
    return list(zip(self.stage_names, self.stages))

  def side_heads(self):
    """Heads that branch off the main path: (after_stage, name, module) triples."""
    return []

  def check_input(self, shape) -> None:
    """Raises ConfigError unless `shape` is (batch, H, W, in_channels) with H, W large enough."""
    if len(shape) != 4 or shape[-1] != self.in_channels:
      raise errors.ConfigError(f"{self.name}: input shape {tuple(shape)} is invalid; expected "
                               f"(batch, height, width, {self.in_channels}).")
    h, w = shape[1], shape[2]
    if min(h, w) < self.min_image_size:
      raise errors.ConfigError(f"{self.name}: input {h}x{w} is too small; the minimum is "
                               f"{self.min_image_size}x{self.min_image_size}.")

  def features(self, x: jax.Array) -> jax.Array:
    """Everything but the classifier head: the last feature map."""
    self.check_input(x.shape)
    for name, stage in self.named_stages():
      if name != "head":
        x = stage(x)
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.features(x))

  @property
  def head(self):
    return self.stages[self.stage_names.index("head")]
