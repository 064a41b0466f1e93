"""The conv unit's switches, local response normalization, the classifier head."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn.layers import ClassifierHead, ConvStyle, ConvUnit, LocalResponseNorm, MaxPool
from bottleneck.nn.paths import Paths
from bottleneck.util.errors import ConfigError
from tests.numerics import assert_matches, assert_rounding_close


@pytest.mark.parametrize("use_bias,batch_norm,bn_use_scale,expected", [
    (True, False, True, 3 * 3 * 4 * 8 + 8),
    (False, True, True, 3 * 3 * 4 * 8 + 2 * 8),
    (False, True, False, 3 * 3 * 4 * 8 + 8),
    (True, True, True, 3 * 3 * 4 * 8 + 3 * 8),
])
def test_conv_unit_params(use_bias, batch_norm, bn_use_scale, expected):
  unit = ConvUnit(
      4, 8, 3, style=ConvStyle(use_bias=use_bias, batch_norm=batch_norm, bn_use_scale=bn_use_scale),
      rngs=nnx.Rngs(0))
  assert complexity.count_params(unit) == expected


def test_activation_switch():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, 5, 4)), jnp.float32)
  relu = ConvUnit(4, 8, 1, rngs=nnx.Rngs(0))
  linear = ConvUnit(4, 8, 1, activation=False, rngs=nnx.Rngs(0))
  assert float(relu(x).min()) >= 0
  assert float(linear(x).min()) < 0
  assert_matches(relu(x), lambda m, x: jnp.maximum(m(x), 0), linear, x)


def test_factorized_kernel_and_bad_arguments():
  unit = ConvUnit(4, 8, (1, 7), rngs=nnx.Rngs(0))
  assert unit.conv.kernel.shape == (1, 7, 4, 8)
  with pytest.raises(ConfigError, match=r"out_features=0 is invalid"):
    ConvUnit(4, 0, 3, rngs=nnx.Rngs(0))
  with pytest.raises(ConfigError, match=r"unknown padding 'same'.*Did you mean 'SAME'"):
    ConvUnit(4, 8, 3, padding="same", rngs=nnx.Rngs(0))


def test_local_response_norm_matches_its_formula():
  x = np.random.default_rng(1).normal(size=(2, 3, 3, 7)).astype(np.float32)
  lrn = LocalResponseNorm(size=5, alpha=1e-2, beta=0.75, k=2.0)

  def formula(x):  # in x's dtype
    out = np.empty_like(x)
    for c in range(7):
      window = x[..., max(0, c - 2):min(7, c + 3)]
      out[..., c] = x[..., c] / (2.0 + 1e-2 / 5 * (window**2).sum(-1))**0.75
    return out

  assert_rounding_close(lrn(jnp.asarray(x)), formula(x), formula(x.astype(np.float64)))
  # Differentiable (the paper's GoogLeNet trains through it), jitted as training runs it and
  # rematerialized as the memory accounting traces it: reverse mode against finite differences.
  for f in (jax.jit(lrn), jax.checkpoint(lrn)):
    jax.test_util.check_grads(f, (jnp.asarray(x),), order=1, modes=["rev"])


def test_classifier_head_pools_globally():
  head = ClassifierHead(6, 3, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 4, 5, 6)), jnp.float32)
  assert_matches(head(x), lambda d, x: d(x.mean(axis=(1, 2))), head.dense, x)
  with pytest.raises(ConfigError, match="num_classes=0"):
    ClassifierHead(6, 0, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("cin,cout,bias,batch_norm", [(5, 7, True, False), (64, 16, False, True)])
def test_1x1_as_matmul_equals_xla_conv(cin, cout, bias, batch_norm):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6, 5, cin)), jnp.float32)
  conv = ConvUnit(
      cin, cout, 1, style=ConvStyle(use_bias=bias, batch_norm=batch_norm,
                                    paths=Paths(conv_1x1="xla")), rngs=nnx.Rngs(0))
  mm = ConvUnit(
      cin, cout, 1, style=ConvStyle(use_bias=bias, batch_norm=batch_norm,
                                    paths=Paths(conv_1x1="matmul")), rngs=nnx.Rngs(0))
  path = lambda u, hw=(6, 5): u.paths.conv_path(hw, u.kernel_size, u.strides, u.padding)
  assert path(mm) == "matmul" and path(conv) == "xla"
  assert_matches(mm(x), lambda m, x: m(x), conv, x)
  strided = ConvUnit(cin, cout, 1, style=ConvStyle(paths=Paths(conv_1x1="matmul")), strides=2,
                     rngs=nnx.Rngs(0))
  assert path(strided) == "xla"  # only stride-1 1x1 convs are matmuls
  with pytest.raises(ConfigError, match="unknown conv_1x1 'einsum'"):
    Paths(conv_1x1="einsum")


def test_explicit_padding_pads_both_sides_as_pytorch_does():
  """A 7x7/2 conv with padding=3 (PyTorch, Caffe) differs from SAME (2 before, 3 after)."""
  x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 10, 10, 2)), jnp.float32)
  unit = ConvUnit(2, 4, 7, style=ConvStyle(use_bias=False), strides=2, padding=3, activation=False,
                  rngs=nnx.Rngs(0))
  assert unit.padding == ((3, 3), (3, 3))
  assert_matches(
      unit(x), lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), (
          (3, 3), (3, 3)), dimension_numbers=("NHWC", "HWIO", "NHWC")), x, unit.conv.kernel[...])
  same = ConvUnit(2, 4, 7, style=ConvStyle(use_bias=False), strides=2, activation=False,
                  rngs=nnx.Rngs(0))
  assert not np.allclose(same(x), unit(x))
  for bad in (-1, (1, 2, 3), "same", 1.5):
    with pytest.raises(ConfigError, match="padding"):
      ConvUnit(2, 4, 3, padding=bad, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("size,window,want", [(112, 3, 56), (7, 3, 3), (201, 3, 100), (14, 2, 7),
                                              (1, 2, 1), (2, 3, 1)])
def test_ceil_mode_pool_rounds_up(size, window, want):
  """Output sides as PyTorch's MaxPool2d(window, 2, ceil_mode=True) gives them; the windows
  that hang over the end take the maximum of their real pixels."""
  pool = MaxPool(window, 2, "VALID", ceil_mode=True)
  assert pool.output_size(size) == want
  x = jnp.asarray(np.random.default_rng(size).normal(size=(1, size, size, 2)), jnp.float32)
  y = pool(x)
  assert y.shape == (1, want, want, 2)
  last = x[0, 2 * (want - 1):2 * (want - 1) + window, 2 * (want - 1):2 * (want - 1) + window]
  np.testing.assert_array_equal(y[0, -1, -1], last.max(axis=(0, 1)))
  with pytest.raises(ConfigError, match="ceil_mode needs padding"):
    MaxPool(3, 2, "SAME", ceil_mode=True)
