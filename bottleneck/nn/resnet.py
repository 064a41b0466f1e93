"""ResNet (He et al. 2015) as torchvision builds it, with and without the bottleneck's 1x1s.

ResNet-50's bottleneck block is the 1x1 reduction in its residual form: a 1x1 conv reduces
the block's input (256 channels in the first stage) to `planes` (64), the 3x3 works at that
width, and a second 1x1 expands back to 4 x `planes` before the shortcut is added. Its
`Reduction` switches both 1x1s:

- reduced (`Reduction()`, the published block): 1x1 reduce -> 3x3 -> 1x1 expand (linear), +
  shortcut, ReLU. `Reduction.ratio` sets the reduce width to `ratio * in_features` (published:
  `planes`, a quarter of the block's output), `Reduction.activation=False` drops the ReLU after
  the reduce.
- naive (`Reduction(enabled=False)`): the same block without its 1x1s, the 3x3 at full width:
  one 3x3 conv from the block's input to its output channels (linear), + shortcut, ReLU. Same
  input and output channels, same stride, same shortcut.

ResNet-18 and -34 are made of basic blocks (two 3x3 convs, no 1x1 reduction): they have one
variant, the naive one (`registry` refuses `reduce=True` for them). ResNet-34 against
ResNet-50 is the paper's own comparison (Table 1 and 3: 3.6 against 3.8 G multiply-adds).

Geometry as torchvision's `resnet18/34/50` (v1.5: the stride of a downsampling bottleneck is
in its 3x3, not its first 1x1): conv1 7x7/2 pad 3 -> max pool 3x3/2 pad 1 -> four stages of
blocks at 64, 128, 256, 512 planes (strides 1, 2, 2, 2) -> global average pool -> linear. A
block whose stride or channels change has a projection shortcut (1x1 conv with the block's
stride, batch norm), else the identity. Every conv: no bias, batch norm (epsilon 1e-5), padding
k // 2 pixels.
"""

from __future__ import annotations

import jax
from flax import nnx

from bottleneck.nn import network
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.layers import ClassifierHead, kept
from bottleneck.util import validation

# PyTorch's batch norm: momentum 0.1 (0.9 in Flax's convention), epsilon 1e-5.
STYLE = ConvStyle(use_bias=False, batch_norm=True, bn_momentum=0.9, bn_epsilon=1e-5)

# Blocks per stage and block kind (torchvision's `resnet18/34/50`).
LAYOUTS = {
    "resnet18": ((2, 2, 2, 2), "basic"),
    "resnet34": ((3, 4, 6, 3), "basic"),
    "resnet50": ((3, 4, 6, 3), "bottleneck"),
}
PLANES = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}


class Residual(nnx.Module):
  """A residual block: `body` (conv units, the last linear) plus `shortcut` (None: the
  identity; else a strided 1x1 projection with batch norm), then ReLU.

  `Residual(in_features, planes, kind="bottleneck" | "basic", stride=..., reduction=...,
  style=..., rngs=..., name=...)`; its output has `planes * EXPANSION[kind]` channels. See the
  module docstring for what `reduction` switches.
  """

  kind = "residual"

  def __init__(self, in_features: int, planes: int, *, kind: str = "bottleneck", stride: int = 1,
               reduction: Reduction = Reduction(), style: ConvStyle = STYLE, rngs: nnx.Rngs,
               name: str = "block"):
    self.name = name
    validation.choice(kind, "block kind", EXPANSION, name)
    self.in_features = validation.positive_int(in_features, "in_features", name)
    validation.positive_int(planes, "planes", name)
    validation.choice(stride, "stride", (1, 2), name)
    self.out_features = planes * EXPANSION[kind]
    self.reduction = reduction
    self.reduce = kind == "bottleneck" and reduction.at("3x3")

    def unit(cin, cout, k, tag, s=1, activation=True):
      return style.unit(cin, cout, k, strides=s, padding=k // 2, activation=activation, rngs=rngs,
                        name=f"{name}/{tag}")

    widths = {}
    if kind == "basic":
      body = [
          unit(in_features, planes, 3, "conv1", stride),
          unit(planes, planes, 3, "conv2", activation=False)
      ]
      widths["3x3"] = planes
    elif self.reduce:
      width = reduction.width(planes, in_features, "reduce", name)
      widths.update({"1x1 reduce": width, "3x3": width, "1x1 expand": self.out_features})
      body = [
          unit(in_features, width, 1, "reduce", activation=reduction.activation),
          unit(width, width, 3, "conv", stride),
          unit(width, self.out_features, 1, "expand", activation=False)
      ]
    else:
      widths["3x3"] = self.out_features
      body = [unit(in_features, self.out_features, 3, "conv", stride, activation=False)]
    self.body = nnx.Sequential(*body)
    projection = stride != 1 or in_features != self.out_features
    self.shortcut = nnx.data(
        unit(in_features, self.out_features, 1, "downsample", stride, activation=False
            ) if projection else None)
    self.widths = tuple(widths.items())  # for the per-block tables, as Inception blocks give

  def units(self):
    """The conv units in torchvision's order: the body's, then the projection's."""
    return [*self.body.layers, *([self.shortcut] if self.shortcut is not None else [])]

  def __call__(self, x: jax.Array) -> jax.Array:
    with jax.named_scope(self.name):
      identity = x if self.shortcut is None else self.shortcut(x)
      return kept(nnx.relu(self.body(x) + identity))


class ResNet(network.Network):
  """torchvision's ResNet-18, -34 or -50 (`depth`), each block a `Residual`.

  Stages, named for the per-block tables: `conv1`, `pool1`, `layer1_0` ... `layer4_2` (as
  torchvision's `layer1.0` ...), `head`. `width` multiplies every stage's planes and conv1's
  64 channels (rounded, at least 1), `width_extra` widens the first this-many by one channel
  (`network.Widths`), for comparisons at equal compute.
  """

  def __init__(self, *, depth: int = 50, num_classes: int = 1000, image_size: int = 224,
               reduction: Reduction = Reduction(), style: ConvStyle = STYLE, width: float = 1.0,
               width_extra: int = 0, rngs: nnx.Rngs, name: str | None = None):
    arch = f"resnet{depth}"
    validation.choice(arch, "ResNet depth", LAYOUTS, "resnet")
    name = name or arch
    counts, kind = LAYOUTS[arch]
    # conv1 (/2), the max pool (/2) and three stride-2 stages all pad: from any input of a
    # pixel or more each gives a map whose every output reads a real pixel (torchvision's
    # networks accept the same; 32 pixels reach 1x1 at the last stage).
    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=1)
    self.block_kind = kind
    scale = network.Widths(width, width_extra, name)
    c = scale(64)
    self._add("conv1", style.unit(3, c, 7, strides=2, padding=3, rngs=rngs, name="conv1"))
    self._add("pool1", style.pool(3, 2, 1))
    for stage, (count, planes) in enumerate(zip(counts, PLANES), start=1):
      planes = scale(planes)
      for i in range(count):
        block_name = f"layer{stage}_{i}"
        stride = 2 if stage > 1 and i == 0 else 1
        c = self._add(
            block_name,
            Residual(c, planes, kind=kind, stride=stride, reduction=reduction, style=style,
                     rngs=rngs, name=block_name)).out_features
    self.width_bases = scale.check()
    self._add(
        "head",
        ClassifierHead(c, num_classes, dtype=style.dtype, param_dtype=style.param_dtype, rngs=rngs))
    self._seal()
