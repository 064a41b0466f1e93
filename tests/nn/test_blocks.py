"""Inception blocks: naive vs reduced structure, knobs, and errors on impossible widths."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import blocks
from bottleneck.nn.blocks import Reduction
from bottleneck.nn.layers import ConvUnit
from bottleneck.util.errors import ConfigError


def conv_units(module):
  return [m for _, m in nnx.iter_graph(module) if isinstance(m, ConvUnit)]


def kernels(module):
  return sorted(u.kernel_size for u in conv_units(module))


def test_googlenet_block_variants_have_the_papers_branches():
  reduced = blocks.GoogLeNetInception(192, 64, 96, 128, 16, 32, 32, rngs=nnx.Rngs(0))
  naive = blocks.GoogLeNetInception(192, 64, 96, 128, 16, 32, 32,
                                    reduction=Reduction(enabled=False), rngs=nnx.Rngs(0))
  assert kernels(reduced) == [(1, 1)] * 4 + [(3, 3), (5, 5)]
  assert kernels(naive) == [(1, 1), (3, 3), (5, 5)]
  assert reduced.out_features == 256
  y = reduced(jnp.ones((1, 28, 28, 192)))
  assert y.shape == (1, 28, 28, 256)
  assert naive(jnp.ones((1, 28, 28, 192))).shape == (1, 28, 28, 416)


def test_branch5_kernel_and_reduction_ratio():
  block = blocks.GoogLeNetInception(192, 64, 96, 128, 16, 32, 32, branch5_kernel=3,
                                    reduction=Reduction(ratio=0.25), rngs=nnx.Rngs(0))
  assert (5, 5) not in kernels(block)
  reductions = [u for u in conv_units(block) if u.kernel_size == (1, 1) and u.out_features == 48]
  assert len(reductions) == 2  # both reductions are 0.25 * 192 = 48 wide
  assert dict(block.widths)["#3x3 reduce"] == 48


def test_linear_bottleneck_switches_off_the_reduction_relu_only():
  block = blocks.GoogLeNetInception(8, 4, 2, 4, 2, 4, 4, reduction=Reduction(activation=False),
                                    rngs=nnx.Rngs(0))
  linear = [u for u in conv_units(block) if not u.activation]
  assert sorted(u.out_features for u in linear) == [2, 2]
  assert all(u.kernel_size == (1, 1) for u in linear)


@pytest.mark.parametrize("cls,args,reduced_1x1,naive_1x1", [
    (blocks.InceptionV3A, (192, 32), 4, 2),
    (blocks.InceptionV3ReductionA, (288,), 1, 0),
    (blocks.InceptionV3B, (768, 128), 4, 2),
    (blocks.InceptionV3ReductionB, (768,), 2, 0),
    (blocks.InceptionV3C, (1280,), 4, 2),
    (blocks.SmallInception, (96, 32, 32), 2, 1),
    (blocks.SmallDownsample, (96, 80), 1, 0),
])
def test_naive_drops_exactly_the_1x1s_that_feed_larger_convs(cls, args, reduced_1x1, naive_1x1):
  ratio = 0.5 if cls in (blocks.SmallInception, blocks.SmallDownsample) else None
  reduced = cls(*args, reduction=Reduction(ratio=ratio), rngs=nnx.Rngs(0))
  naive = cls(*args, reduction=Reduction(enabled=False), rngs=nnx.Rngs(0))
  count = lambda b: sum(u.kernel_size == (1, 1) for u in conv_units(b))
  assert (count(reduced), count(naive)) == (reduced_1x1, naive_1x1)
  # Both variants keep the same output grid and the same larger convs.
  assert ([k for k in kernels(reduced) if k != (1, 1)
          ] == [k for k in kernels(naive) if k != (1, 1)])
  side = 17
  x = jax.ShapeDtypeStruct((1, side, side, args[0]), jnp.float32)
  out_r = nnx.eval_shape(lambda b, x: b(x), reduced, x)
  out_n = nnx.eval_shape(lambda b, x: b(x), naive, x)
  assert out_r.shape[:3] == out_n.shape[:3]
  assert out_r.shape[-1] == reduced.out_features and out_n.shape[-1] == naive.out_features


def test_reductions_cut_macs_of_the_v3_blocks():
  for cls, args in [(blocks.InceptionV3A, (288, 64)), (blocks.InceptionV3C, (2048,))]:
    r = complexity.module_macs(cls(*args, rngs=nnx.Rngs(0)), (1, 8, 8, args[0]))
    n = complexity.module_macs(cls(*args, reduction=Reduction(enabled=False), rngs=nnx.Rngs(0)),
                               (1, 8, 8, args[0]))
    assert n > r


@pytest.mark.parametrize("kwargs,match", [
    (dict(n1x1=0), r"#1x1=0 is invalid; it must be a whole number >= 1"),
    (dict(n3x3=-4), r"#3x3=-4 is invalid"),
    (dict(n5x5_reduce=0), r"#5x5 reduce=0 is invalid"),
    (dict(pool_proj=2.5), r"pool proj=2.5 is invalid"),
    (dict(branch5_kernel=7), r"unknown branch5_kernel 7; valid: 3, 5"),
])
def test_bad_widths_are_clear_errors(kwargs, match):
  args = dict(in_features=192, n1x1=64, n3x3_reduce=96, n3x3=128, n5x5_reduce=16, n5x5=32,
              pool_proj=32)
  args.update(kwargs)
  with pytest.raises(ConfigError, match=match) as e:
    blocks.GoogLeNetInception(**args, rngs=nnx.Rngs(0), name="inception_3a")
  assert "inception_3a" in str(e.value)


@pytest.mark.parametrize("ratio", [0.0, 1.5, -0.5])
def test_bad_reduction_ratio_is_a_clear_error(ratio):
  with pytest.raises(ConfigError, match=rf"reduction_ratio={ratio} is invalid; it must lie in "
                     r"\(0, 1\]"):
    Reduction(ratio=ratio)


def test_small_reduced_block_needs_a_ratio():
  with pytest.raises(
      ConfigError, match="small_inception: the reduced variant has no published "
      "reduction width here; give reduction_ratio"):
    blocks.SmallInception(96, 32, 32, reduction=Reduction(ratio=None), rngs=nnx.Rngs(0))
  blocks.SmallInception(96, 32, 32, reduction=Reduction(enabled=False), rngs=nnx.Rngs(0))


def test_reduction_widths():
  """Published widths unless a ratio is given; a ratio rounds, with at least one channel."""
  assert Reduction().width(96, 192, "#3x3 reduce", "b") == 96
  assert Reduction(ratio=0.25).width(96, 192, "#3x3 reduce", "b") == 48
  assert Reduction(ratio=0.001).width(96, 192, "#3x3 reduce", "b") == 1
  with pytest.raises(ConfigError, match=r"b: #3x3 reduce=0 is invalid"):
    Reduction().width(0, 192, "#3x3 reduce", "b")


def test_each_reduction_place_alone_by_hand():
  """Inception (3a), 192 channels in: with only the reduction before the 3x3, the 5x5 reads
  the 192 channels itself and the pool branch passes them through (the naive module's)."""
  block = nnx.eval_shape(lambda: blocks.GoogLeNetInception(
      192, 64, 96, 128, 16, 32, 32, reduction=Reduction(places="3x3"), rngs=nnx.Rngs(0)))
  conv = lambda cin, cout, k: cin * k * k * cout + cout  # weights and biases
  assert complexity.count_params(block) == (conv(192, 64, 1) + conv(192, 96, 1) + conv(96, 128, 3)
                                            + conv(192, 32, 5))
  assert block.out_features == 64 + 128 + 32 + 192
  pool_only = nnx.eval_shape(lambda: blocks.GoogLeNetInception(
      192, 64, 96, 128, 16, 32, 32, reduction=Reduction(places=("pool",)), rngs=nnx.Rngs(0)))
  assert complexity.count_params(pool_only) == (conv(192, 64, 1) + conv(192, 128, 3)
                                                + conv(192, 32, 5) + conv(192, 32, 1))
  assert pool_only.out_features == 256
  none = nnx.eval_shape(lambda: blocks.GoogLeNetInception(192, 64, 96, 128, 16, 32, 32, reduction=
                                                          Reduction(places=""), rngs=nnx.Rngs(0)))
  naive = nnx.eval_shape(lambda: blocks.GoogLeNetInception(
      192, 64, 96, 128, 16, 32, 32, reduction=Reduction(enabled=False), rngs=nnx.Rngs(0)))
  assert complexity.count_params(none) == complexity.count_params(naive)


def test_per_place_ratios_override_the_global_one():
  block = nnx.eval_shape(
      lambda: blocks.GoogLeNetInception(192, 64, 96, 128, 16, 32, 32, reduction=Reduction(
          ratio=0.5, ratios="5x5=0.25"), rngs=nnx.Rngs(0)))
  widths = dict(block.widths)
  assert widths["#3x3 reduce"] == 96 and widths["#5x5 reduce"] == 48  # 0.5 and 0.25 of 192
  assert Reduction(ratios={"3x3": 0.5}) == Reduction(ratios="3x3=0.5")
  assert Reduction(places="pool,3x3").places == ("3x3", "pool")  # canonical order


@pytest.mark.parametrize("kwargs,match", [
    ({"places": "3x3,9x9"}, "unknown reduction place '9x9'; valid: 3x3, 5x5, 7x7, pool"),
    ({"ratios": "3x3:0.5"}, "write place=ratio pairs"),
    ({"ratios": "3x3=2"}, r"reduction_ratios\[3x3\]=2.0 is invalid; it must lie in \(0, 1\]"),
    ({"ratios": "pool=0.5"}, "unknown reduction place 'pool'; valid: 3x3, 5x5, 7x7"),
])
def test_bad_places_and_ratios_are_clear_errors(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    Reduction(**kwargs)
