"""Network in Network (Lin, Chen and Yan 2014): the mlpconv, where the 1x1 conv as a per-pixel
fully connected layer began, with and without its 1x1s.

The mlpconv block: a k x k conv followed by 1x1 convs (the paper's "cccp" layers, a small
multilayer perceptron applied at every pixel), each with a bias and ReLU, no batch norm. Its
`Reduction` switches the 1x1s:

- with them (`Reduction()`, the published block): k x k conv -> 1x1 -> 1x1 (ReLU after
  each). `Reduction.activation=False` drops the ReLU after the 1x1s, so the block's only
  non-linearity is the k x k conv's: the per-pixel MLP becomes a linear map, which isolates
  what its non-linearity adds.
- naive (`Reduction(enabled=False)`): the k x k conv alone, from the block's input to the
  block's output channels (the last 1x1's), with its ReLU.

NiN's 1x1s are not reductions in GoogLeNet's sense: they come after the k x k conv, so the
naive network is the cheaper one (as with MobileNetV2's expanding 1x1s).

`nin`: the paper's CIFAR-10 network as its authors released it (the Caffe Model Zoo's
cifar10_nin, from their cuda-convnet configuration): mlpconv 5x5/192 -> 160 -> 96, max pool
3x3/2, dropout 0.5; mlpconv 5x5/192 -> 192 -> 192, average pool 3x3/2, dropout 0.5; mlpconv
3x3/192 -> 192; a 1x1 conv to the classes (cccp6, ReLU) and global average pooling in place of
fully connected layers. Caffe's pools round their output size up (`ceil_mode`): 32 -> 16 -> 8.
Every conv pads k // 2. The classifier is already a convolution: the network is fully
convolutional as built.
"""

from __future__ import annotations

import jax
from flax import nnx

from bottleneck.nn import network
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.layers import AvgPool, ConvClassifier
from bottleneck.util import errors, validation

STYLE = ConvStyle(use_bias=True, batch_norm=False)

# Per mlpconv: (kernel, k x k channels, 1x1 channels...); the pool after it ("max", "avg" or
# None: the last block, followed by the classifier).
LAYOUT = ((5, 192, (160, 96), "max"), (5, 192, (192, 192), "avg"), (3, 192, (192,), None))


class MlpConv(nnx.Module):
  """`MlpConv(in_features, channels, kernel, mlp, reduction=..., style=..., rngs=...,
  name=...)`: a `kernel` x `kernel` conv to `channels`, then a 1x1 conv to each width of `mlp`
  (see the module docstring for what `reduction` switches); `out_features` is `mlp[-1]`."""

  kind = "mlpconv"

  def __init__(self, in_features: int, channels: int, kernel: int, mlp: tuple[int, ...], *,
               reduction: Reduction = Reduction(), style: ConvStyle = STYLE, rngs: nnx.Rngs,
               name: str = "mlpconv"):
    self.name = name
    self.in_features = validation.positive_int(in_features, "in_features", name)
    validation.positive_int(channels, "channels", name)
    validation.positive_int(kernel, "kernel", name)
    if not mlp:
      raise errors.ConfigError(f"{name}: an mlpconv needs at least one 1x1 width; got none.")
    mlp = tuple(validation.positive_int(c, "1x1 width", name) for c in mlp)
    self.out_features = mlp[-1]
    self.reduce = bool(reduction.enabled)

    def unit(cin, cout, k, tag, activation=True):
      return style.unit(cin, cout, k, padding=k // 2, activation=activation, rngs=rngs,
                        name=f"{name}/{tag}")

    tag = f"{kernel}x{kernel}"
    if self.reduce:
      body = [unit(in_features, channels, kernel, "conv")]
      widths = {tag: channels}
      for i, (cin, cout) in enumerate(zip((channels, *mlp), mlp), start=1):
        body.append(unit(cin, cout, 1, f"cccp{i}", activation=reduction.activation))
        widths[f"1x1 #{i}"] = cout
    else:
      body = [unit(in_features, self.out_features, kernel, "conv")]
      widths = {tag: self.out_features}
    self.body = nnx.Sequential(*body)
    self.widths = tuple(widths.items())  # for the per-block tables

  def __call__(self, x: jax.Array) -> jax.Array:
    with jax.named_scope(self.name):
      return self.body(x)


class NiN(network.Network):
  """The paper's CIFAR-10 network, each block an `MlpConv`.

  Stages: `mlpconv1`, `pool1`, `drop1`, `mlpconv2`, `pool2`, `drop2`, `mlpconv3`, `head` (cccp6
  and the global average pool). `width` multiplies every width but the classes' (rounded, at
  least 1), `width_extra` widens the first this-many by one channel (`network.Widths`).
  """

  def __init__(self, *, num_classes: int = 10, image_size: int = 32,
               reduction: Reduction = Reduction(), style: ConvStyle = STYLE, dropout: float = 0.5,
               width: float = 1.0, width_extra: int = 0, rngs: nnx.Rngs, name: str = "nin"):
    pools = {
        "max": lambda: style.pool(3, 2, "VALID", ceil_mode=True),
        "avg": lambda: AvgPool(3, 2, "VALID", count_pad=False, ceil_mode=True)
    }
    built = [pools[kind]() for *_, kind in LAYOUT if kind]

    def final_side(side):
      for pool in built:
        side = pool.output_size(side) if side > 0 else 0
      return side

    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=next(s for s in range(1, 1024) if final_side(s) > 0))
    validation.number(dropout, "dropout", name, at_least=0, below=1)
    scale = network.Widths(width, width_extra, name)
    c = 3
    for i, (kernel, channels, mlp, pool) in enumerate(LAYOUT, start=1):
      block = MlpConv(c, scale(channels), kernel, tuple(map(scale, mlp)), reduction=reduction,
                      style=style, rngs=rngs, name=f"mlpconv{i}")
      c = self._add(f"mlpconv{i}", block).out_features
      if pool:
        self._add(f"pool{i}", built[i - 1])
        self._add(f"drop{i}", nnx.Dropout(dropout, rngs=rngs))
    self.width_bases = scale.check()
    self._add("head", ConvClassifier(c, num_classes, dropout=0.0, style=style, rngs=rngs))
    self._seal()
