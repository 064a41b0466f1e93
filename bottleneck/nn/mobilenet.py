"""MobileNetV2 (Sandler et al. 2018) as torchvision builds it, with and without the inverted
residual's 1x1s.

The inverted residual: a 1x1 conv expands the input t times (ReLU6), a 3x3 depthwise conv
filters each channel (ReLU6), and a 1x1 conv projects to the output channels with no
activation (the "linear bottleneck"); the input is added back when the stride is 1 and the
channels match. Every conv has no bias and batch norm (epsilon 1e-5). Its `Reduction`
switches both 1x1s:

- reduced (`Reduction(activation=False)`, the published block): expand -> depthwise ->
  linear projection. `Reduction(activation=True)` puts a ReLU6 after the projection: the
  paper's Fig. 6 ablation (linear against ReLU6 in the bottleneck). `expansion` replaces the
  ratio t of every block that expands (6 as published).
- naive (`Reduction(enabled=False)`): the same block without its 1x1s: one full 3x3 conv from
  the block's input to its output channels (no depthwise: it cannot change the channels),
  then batch norm, with the projection's activation, and the same residual.

The network (torchvision's `mobilenet_v2`, width 1.0): a 3x3/2 conv to 32 channels, 17
inverted residuals (t, channels, repeats, first stride: (1, 16, 1, 1), (6, 24, 2, 2),
(6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)), a 1x1 conv to
1280 (ReLU6), global average pool, dropout 0.2 and a linear layer.
"""

from __future__ import annotations

import jax
from flax import nnx

from bottleneck.nn import network
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.layers import ClassifierHead, kept
from bottleneck.util import errors, validation

# PyTorch's batch norm: momentum 0.1 (0.9 in Flax's convention), epsilon 1e-5.
STYLE = ConvStyle(use_bias=False, batch_norm=True, bn_momentum=0.9, bn_epsilon=1e-5)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nnx.Module):
  """`InvertedResidual(in_features, out_features, stride=..., expansion=t, reduction=...,
  style=..., rngs=..., name=...)`: see the module docstring."""

  kind = "inverted_residual"

  def __init__(self, in_features: int, out_features: int, *, stride: int = 1, expansion: float = 6,
               reduction: Reduction = Reduction(activation=False), style: ConvStyle = STYLE,
               rngs: nnx.Rngs, name: str = "block"):
    self.name = name
    self.in_features = validation.positive_int(in_features, "in_features", name)
    self.out_features = validation.positive_int(out_features, "out_features", name)
    validation.choice(stride, "stride", (1, 2), name)
    validation.number(expansion, "expansion", name, above=0)
    self.reduce = reduction.at("3x3")
    self.residual = stride == 1 and in_features == out_features
    projection = "relu6" if reduction.activation else False

    def unit(cin, cout, k, tag, s=1, activation="relu6", groups=1):
      return style.unit(cin, cout, k, strides=s, padding=k // 2, activation=activation,
                        groups=groups, rngs=rngs, name=f"{name}/{tag}")

    widths = {}
    if self.reduce:
      hidden = round(in_features * expansion)
      body = [unit(in_features, hidden, 1, "expand")] if expansion != 1 else []
      body += [
          unit(hidden, hidden, 3, "depthwise", stride, groups=hidden),
          unit(hidden, out_features, 1, "project", activation=projection)
      ]
      if expansion != 1:
        widths["1x1 expand"] = hidden
      widths.update({"3x3 depthwise": hidden, "1x1 project": out_features})
    else:
      body = [unit(in_features, out_features, 3, "conv", stride, activation=projection)]
      widths["3x3"] = out_features
    self.body = nnx.Sequential(*body)
    self.widths = tuple(widths.items())

  def __call__(self, x: jax.Array) -> jax.Array:
    with jax.named_scope(self.name):
      y = self.body(x)
      return kept(x + y) if self.residual else y


class MobileNetV2(network.Network):
  """torchvision's `mobilenet_v2` (width 1.0), each block an `InvertedResidual`.

  Stages: `conv1`, `block1` ... `block17`, `conv_last`, `head`. `expansion`: the t of every
  block that expands (6 as published; the first block's t of 1 stays). `width` multiplies
  conv1's and every block's channels (rounded, at least 1; torchvision's `width_mult` rounds to
  multiples of 8 instead, so the two agree at 1.0 only); the last conv keeps its 1280 (as
  torchvision's does up to width 1; it widens it above); `width_extra` widens the first
  this-many by one channel (`network.Widths`), for comparisons at equal compute.
  """

  def __init__(self, *, num_classes: int = 1000, image_size: int = 224,
               reduction: Reduction = Reduction(activation=False), style: ConvStyle = STYLE,
               expansion: float = 6.0, dropout: float = 0.2, width: float = 1.0,
               width_extra: int = 0, rngs: nnx.Rngs, name: str = "mobilenet_v2"):
    # Every conv pads k // 2 pixels: any input of a pixel or more gives a map.
    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=1)
    validation.number(expansion, "expansion", name, above=0)
    unit = lambda cin, cout, k, s, tag: style.unit(cin, cout, k, strides=s, padding=k // 2,
                                                   activation="relu6", rngs=rngs, name=tag)
    scale = network.Widths(width, width_extra, name)
    c = scale(32)
    self._add("conv1", unit(3, c, 3, 2, "conv1"))
    index = 0
    for t, channels, repeats, stride in SETTINGS:
      for i in range(repeats):
        index += 1
        if t != 1 and reduction.at("3x3") and round(c * expansion) < 1:  # of the argument
          raise errors.ConfigError(
              f"{name}: expansion={expansion!r} is too small: block{index}'s expanding 1x1 would "
              f"have round({c} x {expansion!r}) = 0 channels; at this width it must be more than "
              f"{0.5 / c:.3g}.")
        block = InvertedResidual(c, scale(channels), stride=stride if i == 0 else 1,
                                 expansion=1 if t == 1 else expansion, reduction=reduction,
                                 style=style, rngs=rngs, name=f"block{index}")
        c = self._add(f"block{index}", block).out_features
    self.width_bases = scale.check()
    last = 1280
    self._add("conv_last", unit(c, last, 1, 1, "conv_last"))
    self._add(
        "head",
        ClassifierHead(last, num_classes, dropout=dropout, dtype=style.dtype,
                       param_dtype=style.param_dtype, rngs=rngs))
    self._seal()
