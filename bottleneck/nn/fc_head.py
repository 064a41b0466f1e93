"""A small CNN with a flatten + Dense head (`FlattenHeadClassifier`): the classifier that
`bottleneck.nn.conversions` turns into a fully convolutional one (docs/fully_conv.md)."""

from __future__ import annotations

from flax import nnx

from bottleneck.nn import layers
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.network import Network, Widths
from bottleneck.util import errors, validation


class FlattenDenseHead(nnx.Module):
  """Flatten the H x W x C map, Dense -> ReLU -> Dense: the classic fully connected head."""

  def __init__(self, in_features: int, hidden: int, num_classes: int, *, dtype, param_dtype,
               rngs: nnx.Rngs):
    self.hidden = nnx.Linear(in_features, hidden, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.out = nnx.Linear(hidden, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x):
    hidden = layers.kept(self.hidden(x.reshape(x.shape[0], -1)))
    return layers.kept(self.out(layers.kept(nnx.relu(hidden))))


class FlattenHeadClassifier(Network):
  """A small CNN with a flatten + Dense head, to show that Dense layers are convolutions.

  Trunk: conv 3x3 VALID (16 x width) -> conv 3x3 VALID (32 x width) -> max pool 2x2/2 VALID,
  and with the reduction enabled a 1x1 conv down to `reduction_channels` (which shrinks the
  Dense layer behind it). VALID padding everywhere makes each output depend only on its own
  input window, so the convolutionalized network (`bottleneck.nn.conversions`) reproduces
  this classifier on every crop exactly. The Dense head fixes the input to `image_size` x
  `image_size`.
  """

  def __init__(self, *, num_classes: int = 10, image_size: int = 8, in_channels: int = 1,
               width: float = 1.0, width_extra: int = 0, hidden: int = 64,
               reduction: Reduction = Reduction(enabled=False), reduction_channels: int = 8,
               style: ConvStyle = ConvStyle(), rngs: nnx.Rngs):
    name = "flatten_head_cnn"  # its one registry name
    # Two 3x3 VALID convs and a 2x2 pool need 6 pixels.
    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=6)
    dtype, param_dtype = style.dtype, style.param_dtype
    self.in_channels = validation.positive_int(in_channels, "in_channels", name)
    validation.positive_int(hidden, "hidden", name)
    scale = Widths(width, width_extra, name)
    c1, c2 = scale(16), scale(32)
    self.width_bases = scale.check()
    layers = [
        style.unit(in_channels, c1, 3, padding="VALID", rngs=rngs, name="conv1"),
        style.unit(c1, c2, 3, padding="VALID", rngs=rngs, name="conv2"),
        style.pool(2, 2, "VALID")
    ]
    if self.reduce:
      validation.positive_int(reduction_channels, "reduction_channels", name)
      layers.append(
          style.unit(c2, reduction_channels, 1, activation=reduction.activation, rngs=rngs,
                     name="reduce"))
      c2 = reduction_channels
    self.stride = 2
    self.feature_size = (image_size - 4) // 2
    self._add("trunk", nnx.Sequential(*layers))
    self._add(
        "head",
        FlattenDenseHead(self.feature_size**2 * c2, hidden, num_classes, dtype=dtype,
                         param_dtype=param_dtype, rngs=rngs))
    self._seal()

  @property
  def trunk(self):
    return self.stages[0]

  @property
  def hidden(self):
    return self.head.hidden

  @property
  def out(self):
    return self.head.out

  def check_input(self, shape) -> None:
    super().check_input(shape)
    if tuple(shape[1:3]) != (self.image_size, self.image_size):
      raise errors.ConfigError(
          f"{self.name}: input {shape[1]}x{shape[2]} differs from {self.image_size}x"
          f"{self.image_size}: a flatten + Dense head fixes the input size. "
          "bottleneck.nn.conversions.convolutionalize() makes a network for larger inputs.")
