"""Network in Network (`bottleneck.nn.nin`): the paper's CIFAR-10 network with and without
its 1x1s, Caffe's ceil-mode pools against PyTorch's, and its score map."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import conversions, layers, nin, registry
from bottleneck.util.errors import ConfigError
from tests.numerics import score_maps

# By hand at 32x32 (convs pad k // 2; pools 32 -> 16 -> 8). With the 1x1s:
#   params 5*5*3*192+192 + 192*160+160 + 160*96+96 + 5*5*96*192+192 + 2*(192*192+192)
#          + 3*3*192*192+192 + 192*192+192 + 192*10+10 = 966,986 (the usual "0.97M");
#   MACs 32*32*(75*192 + 192*160 + 160*96) + 16*16*(2400*192 + 2*192*192)
#        + 8*8*(1728*192 + 192*192 + 192*10) = 222,486,528.
# Without: the k x k convs to each block's output (5x5 3->96, 5x5 96->192, 3x3 192->192) and
# the classifier: 7,296 + 460,992 + 331,968 + 1,930 = 802,186 parameters;
# 32*32*75*96 + 16*16*2400*192 + 8*8*(1728*192 + 192*10) = 146,694,144 MACs.
COUNTS = {True: (966_986, 222_486_528), False: (802_186, 146_694_144)}


@pytest.mark.parametrize("reduce", [True, False])
def test_counts_by_hand(reduce):
  model = registry.abstract_model("nin", reduce=reduce)
  assert (complexity.count_params(model), complexity.module_macs(model, (1, 32, 32, 3))) == \
      COUNTS[reduce]
  assert model.stage_names == ("mlpconv1", "pool1", "drop1", "mlpconv2", "pool2", "drop2",
                               "mlpconv3", "head")


def test_the_mlpconv_with_and_without_its_1x1s():
  block = lambda **kw: dict(registry.abstract_model("nin", **kw).named_stages())["mlpconv1"]
  reduced, naive = block(reduce=True), block(reduce=False)
  assert dict(reduced.widths) == {"5x5": 192, "1x1 #1": 160, "1x1 #2": 96}
  assert dict(naive.widths) == {"5x5": 96}
  assert reduced.out_features == naive.out_features == 96
  assert all(u.activation for u in reduced.body.layers)
  # Without the 1x1s' ReLU, the per-pixel MLP is a linear map; the k x k conv keeps its ReLU.
  linear = block(reduce=True, reduction_activation=False)
  assert [bool(u.activation) for u in linear.body.layers] == [True, False, False]
  with pytest.raises(ConfigError, match="at least one 1x1 width"):
    nin.MlpConv(3, 8, 3, (), rngs=nnx.Rngs(0))


def test_ceil_mode_average_pool_divides_by_its_real_taps():
  """Caffe's (and PyTorch's ceil-mode) average: 4 -> 2 windows of 3/2, the last covering
  columns 2 and 3 only, divided by those 2 (not 3)."""
  pool = layers.AvgPool(3, 2, "VALID", count_pad=False, ceil_mode=True)
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  y = np.asarray(pool(x))[0, :, :, 0]
  assert y.shape == (2, 2) and [pool.output_size(n) for n in (3, 4, 5, 16, 32)] == [1, 2, 2, 8, 16]
  assert y[1, 1] == pytest.approx(np.mean([10, 11, 14, 15]))
  assert y[0, 1] == pytest.approx(np.mean([2, 3, 6, 7, 10, 11]))
  with pytest.raises(ConfigError, match="ceil_mode needs padding 'VALID'"):
    layers.AvgPool(3, 2, "SAME", ceil_mode=True)


@pytest.mark.parametrize("reduce", [True, False])
def test_the_same_function_as_its_pytorch_twin(reduce):
  """At sizes where Caffe's pools round up (a last window over the edge) and at the smallest
  input (4: 2 then 1 location)."""
  torch_peer = pytest.importorskip("bottleneck.measure.torch_peer")
  model = registry.random_model("nin", reduce=reduce)
  assert model.min_image_size == 4
  peer = torch_peer.from_nnx(model)
  assert torch_peer.count_params(peer) == COUNTS[reduce][0]
  for size in (32, 35, 4):
    x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
    torch_peer.check_same(model, peer, x, f"nin at {size}")
  with pytest.raises(ConfigError, match=r"image_size=3 is too small; the minimum is 4"):
    registry.abstract_model("nin", reduce=reduce, image_size=3)


def test_score_map_of_nin():
  """The classifier is a 1x1 conv with ReLU, pooled: the score map applies it at every
  position, then an 8x8/1 average; stride 4; at the training size it is the logits."""
  model = registry.random_model("nin", reduce=True)
  model.eval()
  net = conversions.convolutionalize(model)
  assert (net.stride, net.window, net.pool_first, net.score_map_size(44)) == (4, 8, False, 4)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 44, 40, 3)), jnp.float32)
  scores = score_maps(model, net, x, "nin")
  assert scores.shape == (1, 4, 3, 10)
