"""A 1x1 conv is a Dense layer at every pixel; convolutionalized classifiers match crops."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.nn import conversions, registry
from bottleneck.nn.layers import ClassifierHead
from bottleneck.util.errors import ConfigError
from tests.numerics import assert_matches


def rand(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize("b,h,w,c,k,bias", [(2, 5, 7, 3, 4, True), (1, 1, 1, 16, 1, False),
                                            (3, 9, 4, 33, 65, True)])
def test_1x1_conv_is_dense_at_every_pixel(b, h, w, c, k, bias):
  dense = nnx.Linear(c, k, use_bias=bias, rngs=nnx.Rngs(b + c))
  if bias:
    dense.bias[...] = rand((k,), 7)
  conv = conversions.dense_to_conv1x1(dense)
  x = rand((b, h, w, c), 1)
  assert_matches(conv(x), lambda d, x: d(x.reshape(-1, c)).reshape(b, h, w, k), dense, x)
  back = conversions.conv1x1_to_dense(conv)  # and back, exactly
  np.testing.assert_array_equal(back.kernel[...], dense.kernel[...])
  if bias:
    np.testing.assert_array_equal(back.bias[...], dense.bias[...])


def test_only_a_plain_1x1_conv_is_a_dense_layer():
  with pytest.raises(ConfigError, match=r"3x3 kernel"):
    conversions.conv1x1_to_dense(nnx.Conv(4, 5, (3, 3), rngs=nnx.Rngs(0)))


def test_flatten_dense_is_a_valid_conv():
  dense = nnx.Linear(3 * 4 * 5, 6, rngs=nnx.Rngs(0))
  conv = conversions.flatten_dense_to_conv(dense, 3, 4)
  x = rand((2, 3, 4, 5), 2)
  assert_matches(conv(x)[:, 0, 0], lambda d, x: d(x.reshape(2, -1)), dense, x)
  assert conv(rand((1, 10, 12, 5), 3)).shape == (1, 8, 9, 6)  # slides on a larger map
  with pytest.raises(ConfigError, match="not a multiple of 12"):
    conversions.flatten_dense_to_conv(nnx.Linear(50, 6, rngs=nnx.Rngs(0)), 3, 4)


def test_gap_head_score_map_averages_to_the_logits():
  head = ClassifierHead(8, 5, rngs=nnx.Rngs(0))
  x = rand((2, 6, 7, 8), 4)
  scores = conversions.gap_head_to_score_map(head)(x)
  assert scores.shape == (2, 6, 7, 5)
  assert_matches(scores.mean(axis=(1, 2)), lambda h, x: h(x), head, x)


@pytest.mark.parametrize("reduce,size", [(False, 8), (False, 21), (True, 30)])
def test_convolutionalized_classifier_equals_every_crop(reduce, size):
  model = registry.random_model("flatten_head_cnn", reduce=reduce, seed=5)
  model.eval()
  fc = conversions.convolutionalize(model)
  canvas = rand((2, size, size, 1), 6)
  scores, diff, checked = conversions.crops_vs_score_map(model, fc, canvas)
  m = (size - 8) // 2 + 1  # the score map's side follows from the stride of 2
  assert scores.shape == (2, m, m, 10) and fc.score_map_size(size) == m
  assert checked == 2 * m * m
  assert diff <= 1e-4
  with pytest.raises(ConfigError, match=r"input 7x7 is too small .* minimum is its training "
                     r"size 8x8"):
    fc(canvas[:, :7, :7])
  with pytest.raises(ConfigError, match="fixes the input size"):
    model(rand((1, 10, 10, 1), 7))
