"""A 1x1 conv is a fully connected layer applied at every pixel: exact conversions.

- `dense_to_conv1x1` / `conv1x1_to_dense`: a Dense layer (C -> K) and the 1x1 conv with the same
  weights, reshaped (C, K) <-> (1, 1, C, K). Exact in both directions.
- `flatten_dense_to_conv`: a Dense layer reading a flattened H x W x C map (row-major, as
  `x.reshape(batch, -1)` flattens NHWC) is an H x W conv with VALID padding: on an H x W map it
  gives the same numbers, and on a larger map it slides, giving a map of outputs.
- `gap_head_to_score_map`: a global-average-pool + Dense head, without the pool, is the Dense as
  a 1x1 conv at every position; since both are linear, the mean of that score map is the
  original logits.
- `convolutionalize`: a `FlattenHeadClassifier` to its fully convolutional twin, which takes
  inputs larger than its training size and returns an H' x W' x classes score map whose
  location (i, j) equals the original classifier on the crop at (i * stride, j * stride).
  A network with a global-average-pool head (GoogLeNet) becomes `ScoreMapNetwork`: the global
  pool is the paper's k x k/1 VALID average pool (7x7 at 224) and the Dense a 1x1 conv, so a
  larger input gives a map; at the training size its one location is the logits. Where the
  network pads inside, a location is not exactly the network on the matching crop: the
  crop's padding is zeros where the whole image has pixels (`docs/fully_conv.md` measures it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from bottleneck.nn import fc_head, layers, network
from bottleneck.util.errors import ConfigError


def _copy_bias(dst, src) -> None:
  if (src.bias is None) != (dst.bias is None):
    raise ConfigError("one layer has a bias and the other has none.")
  if src.bias is not None:
    dst.bias[...] = src.bias[...]


def dense_to_conv1x1(dense: nnx.Linear) -> nnx.Conv:
  """The 1x1 conv that applies `dense` at every pixel."""
  c, k = dense.kernel[...].shape
  conv = nnx.Conv(c, k, (1, 1), use_bias=dense.bias is not None, dtype=dense.dtype,
                  param_dtype=dense.param_dtype, rngs=nnx.Rngs(0))
  conv.kernel[...] = dense.kernel[...].reshape(1, 1, c, k)
  _copy_bias(conv, dense)
  return conv


def conv1x1_to_dense(conv: nnx.Conv) -> nnx.Linear:
  """The Dense layer that a 1x1 conv applies at every pixel."""
  kh, kw, c, k = conv.kernel[...].shape
  strides = conv.strides or 1
  strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
  if (kh, kw) != (1, 1) or conv.feature_group_count != 1 or strides != (1, 1):
    raise ConfigError(f"only an ungrouped stride-1 1x1 conv is a Dense layer; this conv has a "
                      f"{kh}x{kw} kernel, {conv.feature_group_count} groups, strides "
                      f"{conv.strides}.")
  dense = nnx.Linear(c, k, use_bias=conv.bias is not None, dtype=conv.dtype,
                     param_dtype=conv.param_dtype, rngs=nnx.Rngs(0))
  dense.kernel[...] = conv.kernel[...].reshape(c, k)
  _copy_bias(dense, conv)
  return dense


def flatten_dense_to_conv(dense: nnx.Linear, height: int, width: int) -> nnx.Conv:
  """The H x W VALID conv equal to `dense` on a flattened H x W x C map."""
  n, k = dense.kernel[...].shape
  if n % (height * width):
    raise ConfigError(f"a Dense layer with {n} inputs cannot read a flattened "
                      f"{height}x{width} map: {n} is not a multiple of {height * width}.")
  c = n // (height * width)
  conv = nnx.Conv(c, k, (height, width), padding="VALID", use_bias=dense.bias is not None,
                  dtype=dense.dtype, param_dtype=dense.param_dtype, rngs=nnx.Rngs(0))
  conv.kernel[...] = dense.kernel[...].reshape(height, width, c, k)
  _copy_bias(conv, dense)
  return conv


class ScoreMapHead(nnx.Module):
  """A global-average-pool head without the pool: class scores at every position."""

  def __init__(self, head):
    self.conv = dense_to_conv1x1(head.dense)

  def __call__(self, x):
    return self.conv(x)


def gap_head_to_score_map(head) -> ScoreMapHead:
  """`bottleneck.nn.layers.ClassifierHead` -> its score-map form (dropout is dropped: eval)."""
  return ScoreMapHead(head)


class FullyConvClassifier(nnx.Module):
  """A `FlattenHeadClassifier` whose Dense layers are convs: any input >= the training size."""

  def __init__(self, classifier: fc_head.FlattenHeadClassifier):
    self.trunk = classifier.trunk
    self.min_image_size = classifier.image_size
    self.stride = classifier.stride
    h = w = classifier.feature_size
    self.hidden = flatten_dense_to_conv(classifier.hidden, h, w)
    self.out = dense_to_conv1x1(classifier.out)

  def score_map_size(self, image_size: int) -> int:
    """Side of the score map for a square input: (N - training size) // stride + 1."""
    return (image_size - self.min_image_size) // self.stride + 1

  def __call__(self, x: jax.Array) -> jax.Array:
    if min(x.shape[1:3]) < self.min_image_size:
      raise ConfigError(f"input {x.shape[1]}x{x.shape[2]} is too small for the fully "
                        f"convolutional classifier; the minimum is its training size "
                        f"{self.min_image_size}x{self.min_image_size}.")
    return self.out(nnx.relu(self.hidden(self.trunk(x))))


# Every network here downsamples by a power of two at most this: the span over which
# `ScoreMapNetwork` measures a network's stride.
_STRIDE_SPAN = 1024


class ScoreMapNetwork(nnx.Module):
  """A network whose head is a global average pool over per-pixel class scores, made fully
  convolutional: a `ClassifierHead` (global average pool -> Dense, the Dense becoming a 1x1
  conv) or a `layers.ConvClassifier` (a 1x1 conv to the classes with ReLU, then the pool:
  SqueezeNet, NiN), whose conv already is one.

  The global pool becomes a k x k/1 VALID average pool, k the feature map's side at the
  training size S; the network's stride s is measured (how much the map grows over a span of
  input). An input of side S + n * s gives an (n + 1)-sided map of class scores, location i
  the window of the map that a crop at i * s covers. For a Dense head the pool comes first (a
  linear map and an average commute: fewer multiply-adds); a conv head with ReLU is applied at
  every position, then pooled."""

  def __init__(self, network: network.Network):
    network.eval()
    s = network.image_size
    side_at = lambda n: nnx.eval_shape(lambda m: m.features(jnp.zeros(
        (1, n, n, m.in_channels))), network).shape[1]
    side = side_at(s)
    grown = side_at(s + _STRIDE_SPAN) - side
    stride = _STRIDE_SPAN // grown if grown else 0
    if not stride or stride * grown != _STRIDE_SPAN or side_at(s + stride) != side + 1:
      raise ConfigError(f"{network.name} at {s}x{s} ends on a {side}x{side} map that does not "
                        "grow by one location per whole stride of the input; its score map "
                        "would not line up with crops.")
    self.network = network
    self.min_image_size, self.window, self.stride = s, side, stride
    self.pool = layers.AvgPool(side, 1, "VALID")
    head = network.head
    if isinstance(head, layers.ConvClassifier):
      self.conv, self.pool_first = head.conv, False
    else:
      self.conv, self.pool_first = dense_to_conv1x1(head.dense), True

  def score_map_size(self, image_size: int) -> int:
    """Side of the map for an input side: (N - training size) // stride + 1."""
    return (image_size - self.min_image_size) // self.stride + 1

  def __call__(self, x: jax.Array) -> jax.Array:
    if min(x.shape[1:3]) < self.min_image_size:
      raise ConfigError(f"input {x.shape[1]}x{x.shape[2]} is too small for the score map of "
                        f"{self.network.name}; the minimum is its training size "
                        f"{self.min_image_size}x{self.min_image_size}.")
    features = self.network.features(x)
    scores = self.conv(self.pool(features)) if self.pool_first else self.pool(self.conv(features))
    # A map whose last windows round up (ceil-mode pools) may have a location past the last
    # whole crop: the map is cut to the crops the input holds.
    return scores[:, :self.score_map_size(x.shape[1]), :self.score_map_size(x.shape[2])]


def convolutionalize(classifier):
  """The fully convolutional twin of a `FlattenHeadClassifier` or of a network whose head is a
  global average pool over per-pixel class scores (a Dense or a 1x1 conv head)."""
  if isinstance(classifier, fc_head.FlattenHeadClassifier):
    return FullyConvClassifier(classifier)
  if isinstance(classifier, network.Network) and "head" in classifier.stage_names and \
      isinstance(classifier.head, (layers.ClassifierHead, layers.ConvClassifier)):
    return ScoreMapNetwork(classifier)
  raise ConfigError(f"{type(classifier).__name__} has no Dense or 1x1 conv classifier to turn "
                    "into a score map.")


def crop_logits(classifier, fully_conv, x: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """The classifier on the crop under every location of an H' x W' score map of input `x`:
  (batch, H', W', classes), crop (i, j) at (i * stride, j * stride)."""
  size, stride = fully_conv.min_image_size, fully_conv.stride
  h, w = shape
  crops = jnp.stack([
      x[:, i * stride:i * stride + size, j * stride:j * stride + size]
      for i in range(h)
      for j in range(w)
  ], axis=1)
  b = x.shape[0]
  return classifier(crops.reshape(b * h * w, size, size, x.shape[-1])).reshape(b, h, w, -1)


def crops_vs_score_map(classifier, fully_conv, canvas: jax.Array):
  """(score map, max |score map - classifier on every matching crop|, crops checked), for a
  square or oblong input."""
  scores = fully_conv(canvas)
  direct = crop_logits(classifier, fully_conv, canvas, scores.shape[1:3])
  diff = jnp.max(jnp.abs(direct - scores))
  return scores, float(diff), direct.shape[0] * direct.shape[1] * direct.shape[2]
