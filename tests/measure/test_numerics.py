"""The rounding estimates that the suite's float tolerances come from
(bottleneck/measure/numerics.py, tests/numerics.py): they cover real reorderings of a sum, and they
still catch a wrong result."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import numerics
from bottleneck.nn.layers import ConvStyle, ConvUnit
from bottleneck.nn.paths import Paths
from tests.numerics import assert_matches, assert_rounding_close, in_float64, rounding_ratios


def test_longest_sum_and_rtol_by_hand():
  unit = ConvUnit(6, 5, (1, 7), rngs=nnx.Rngs(0))
  assert numerics.longest_sum(unit) == 7 * 6
  dense = nnx.Linear(300, 4, rngs=nnx.Rngs(0))
  assert numerics.longest_sum(dense) == 300
  assert numerics.float32_rtol(dense, 4) == pytest.approx(16 * 2 * 2 * math.sqrt(300) * 2**-24)
  assert numerics.float32_rtol(unit) == numerics.float32_rtol(unit, 1)  # one kernel: depth 1


@pytest.mark.parametrize("n", [64, 4096])
def test_the_estimate_covers_two_summation_orders(n):
  """The same products summed one after the other (NumPy's cumsum) and blocked (XLA's dot):
  their float32 results differ by less than `float32_rtol`'s estimate for depth 1, and by more
  than nothing (the orders do differ)."""
  rng = np.random.default_rng(n)
  a = rng.normal(size=(32, n)).astype(np.float32)
  b = rng.normal(size=(n, 16)).astype(np.float32)
  sequential = np.cumsum(a[:, :, None] * b[None], axis=1, dtype=np.float32)[:, -1]
  blocked = np.asarray(jnp.dot(a, b))
  rel = np.abs(sequential - blocked).max() / np.abs(blocked).max()
  assert 0 < rel <= numerics.FACTOR * 2 * math.sqrt(n) * numerics.U


def test_in_float64_computes_in_float64():
  unit = ConvUnit(3, 4, 3, style=ConvStyle(batch_norm=True),
                  rngs=nnx.Rngs(0))  # computes in float32 by default
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 5, 3)), jnp.float32)
  exact = in_float64(lambda m, x: m(x), unit, x)
  assert exact.dtype == np.float64
  assert not np.array_equal(exact, np.asarray(unit(x), np.float64))  # not float32 widened
  assert unit.conv.kernel[...].dtype == jnp.float32  # the module itself is left as it was


def test_the_bound_passes_another_path_and_catches_a_small_error():
  """XLA's conv against the im2col path passes; the same conv with one weight off by 1e-4 of
  kernel's scale fails."""
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 12, 11, 5)), jnp.float32)
  units = [
      ConvUnit(5, 4, 3, style=ConvStyle(paths=Paths(conv_strided=p)), strides=2, rngs=nnx.Rngs(0))
      for p in ("xla", "im2col")
  ]
  assert_matches(units[1](x), lambda m, x: m(x), units[0], x)
  wrong = nnx.clone(units[0])
  kernel = np.array(wrong.conv.kernel[...])
  kernel[1, 1, 0, 0] += 1e-4 * np.abs(kernel).max()
  wrong.conv.kernel[...] = jnp.asarray(kernel)
  exact = in_float64(lambda m, x: m(x), units[0], x)
  assert max(rounding_ratios(wrong(x), units[0](x), exact)) > 1
  with pytest.raises(AssertionError, match="times the bound"):
    assert_rounding_close(wrong(x), units[0](x), exact, "a weight off")


def test_a_gradient_that_is_zero_in_theory_is_judged_on_the_gradients_scale():
  """Under batch norm a conv's bias gets a zero gradient, computed as rounding noise: it is
  held to float32's rounding at the scale of the whole gradient, not to exactly zero."""
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 4, 4, 3)), jnp.float32)
  unit = ConvUnit(3, 4, 3, style=ConvStyle(batch_norm=True), rngs=nnx.Rngs(0))
  grad = lambda m, x: nnx.grad(lambda m, x: jnp.sum(jnp.sin(m(x))), argnums=(0, 1))(m, x)
  got = grad(unit, x)
  assert float(jnp.abs(got[0]["conv"]["bias"][...]).max()) < 1e-5
  assert_rounding_close(jax.tree.map(lambda v: v * (1 + 1e-7), got), got, in_float64(grad, unit, x))
