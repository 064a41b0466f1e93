"""SqueezeNet (Iandola et al. 2016) as torchvision builds it, with and without the fire
module's 1x1 squeeze.

The fire module: a 1x1 "squeeze" conv reduces the input to `squeeze` channels, then a 1x1
and a 3x3 "expand" conv read it side by side and their outputs are concatenated (every conv
with bias and ReLU, no batch norm). Its `Reduction` switches the squeeze:

- reduced (`Reduction()`, the published module): squeeze -> [expand 1x1, expand 3x3].
  `Reduction.ratio` sets the squeeze to `ratio * in_features` channels (the paper's squeeze
  ratio SR is squeeze over expand channels: 0.125 as published); `activation=False` drops the
  squeeze's ReLU.
- naive (`Reduction(enabled=False)`): the two expand convs read the module's input directly,
  with the same output channels.

The paper's other design knob, `pct3x3`, is the share of each module's expand channels that
are 3x3 (0.5 as published; its Fig. 2b studies 0.01 to 0.99): the expand keeps its published
total, 3x3 gets `round(pct3x3 * total)` of it (at least one channel, and at least one left
for the 1x1), and `width` then scales each part.

`squeezenet1_0` (the paper's network) and `squeezenet1_1` (torchvision's lighter variant:
a 3x3 conv1 and earlier pools, 2.4x fewer multiply-adds): conv1 (no padding) -> ReLU -> max
pools 3x3/2 in ceil mode between fire modules -> dropout -> a 1x1 conv to the classes with
ReLU -> global average pool. The classifier is already a convolution: the network is fully
convolutional as built.
"""

from __future__ import annotations

import jax
from flax import nnx

from bottleneck.nn import blocks, network
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.layers import ConvClassifier
from bottleneck.util import validation

STYLE = ConvStyle(use_bias=True, batch_norm=False)

# ("conv1", channels, kernel) / ("pool",) / ("fire", squeeze, expand 1x1, expand 3x3).
LAYOUTS = {
    "squeezenet1_0":
        (("conv1", 96, 7), ("pool",), ("fire", 16, 64, 64), ("fire", 16, 64, 64),
         ("fire", 32, 128, 128), ("pool",), ("fire", 32, 128, 128), ("fire", 48, 192, 192),
         ("fire", 48, 192, 192), ("fire", 64, 256, 256), ("pool",), ("fire", 64, 256, 256)),
    "squeezenet1_1":
        (("conv1", 64, 3), ("pool",), ("fire", 16, 64, 64), ("fire", 16, 64, 64), ("pool",),
         ("fire", 32, 128, 128), ("fire", 32, 128, 128), ("pool",), ("fire", 48, 192, 192),
         ("fire", 48, 192, 192), ("fire", 64, 256, 256), ("fire", 64, 256, 256)),
}


class Fire(blocks.InceptionBase):
  """`Fire(in_features, squeeze, expand1x1, expand3x3, reduction=..., style=..., rngs=...)`:
  the squeeze is the branch's shared 1x1 reduction (see the module docstring)."""

  kind = "fire"
  default_name = "fire"

  def branches(self, squeeze, expand1x1, expand3x3):
    e1, e3 = self._width("expand 1x1", expand1x1), self._width("expand 3x3", expand3x3)
    c = self.in_features
    head = []
    if self.reduction.at("3x3"):
      c = self.reduction.width(squeeze, self.in_features, "squeeze", self.name)
      self._widths["squeeze"] = c
      head.append(
          self._style.unit(self.in_features, c, 1, activation=self.reduction.activation,
                           rngs=self._rngs, name=f"{self.name}/squeeze"))
    expand = blocks.Concat([
        self._style.unit(c, e1, 1, rngs=self._rngs, name=f"{self.name}/expand1x1"),
        self._style.unit(c, e3, 3, padding=1, rngs=self._rngs, name=f"{self.name}/expand3x3")
    ])
    return [(nnx.Sequential(*head, expand), e1 + e3)], ("squeeze", "expand 1x1", "expand 3x3")

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.body.branches[0](x)  # one branch: no concatenation of a single output


def split_expand(expand1x1: int, expand3x3: int, pct3x3: float) -> tuple[int, int]:
  """A fire module's expand widths with `pct3x3` of their total as 3x3 (see the module
  docstring): (expand 1x1, expand 3x3)."""
  total = expand1x1 + expand3x3
  e3 = min(max(round(pct3x3 * total), 1), total - 1)
  return total - e3, e3


class SqueezeNet(network.Network):
  """torchvision's `squeezenet1_0` or `squeezenet1_1` (`version`), each fire module a `Fire`;
  named after its version.

  Stages: `conv1`, `pool1`, `fire2` ... `fire9` (the paper's names), the pools between them,
  `head`. `pct3x3`: the 3x3 share of every expand (`split_expand`; 0.5 as published). `width`
  multiplies every width (rounded, at least 1), `width_extra` widens the first this-many by
  one channel (`network.Widths`).
  """

  def __init__(self, *, version: str = "1_0", num_classes: int = 1000, image_size: int = 224,
               reduction: Reduction = Reduction(), style: ConvStyle = STYLE, dropout: float = 0.5,
               pct3x3: float = 0.5, width: float = 1.0, width_extra: int = 0, rngs: nnx.Rngs):
    name = f"squeezenet{version}"
    validation.choice(name, "SqueezeNet version", LAYOUTS, "squeezenet")
    pct3x3 = validation.number(pct3x3, "pct3x3", name, above=0, below=1)
    layout = LAYOUTS[name]
    kernel = layout[0][2]
    pools = [style.pool(3, 2, "VALID", ceil_mode=True) for row in layout if row[0] == "pool"]

    def final_side(side):
      side = (side - kernel) // 2 + 1
      for pool in pools:
        side = pool.output_size(side) if side > 0 else 0
      return side

    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=next(s for s in range(1, 1024) if final_side(s) > 0))
    scale = network.Widths(width, width_extra, name)
    c = scale(layout[0][1])
    self._add("conv1", style.unit(3, c, kernel, strides=2, padding=0, rngs=rngs, name="conv1"))
    fires, pooled = 2, 0
    for row in layout[1:]:
      if row[0] == "pool":
        pooled += 1
        self._add(f"pool{pooled}", pools[pooled - 1])
        continue
      squeeze, e1, e3 = row[1], *split_expand(*row[2:], pct3x3)
      fire = Fire(c, scale(squeeze), scale(e1), scale(e3), reduction=reduction, style=style,
                  rngs=rngs, name=f"fire{fires}")
      c = self._add(f"fire{fires}", fire).out_features
      fires += 1
    self.width_bases = scale.check()
    self._add("head", ConvClassifier(c, num_classes, dropout=dropout, style=style, rngs=rngs))
    self._seal()
