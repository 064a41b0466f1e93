"""SqueezeNet (`bottleneck.nn.squeezenet`): torchvision's counts, and the fire module with and
without its squeeze. Its logits against torchvision's own: tests/nn/test_import_weights.py."""

import jax.numpy as jnp
import numpy as np
import pytest

from bottleneck.measure import complexity
from bottleneck.nn import conversions, registry, squeezenet
from bottleneck.util.errors import ConfigError
from tests.numerics import score_maps

# Parameters: torchvision's model table. Multiply-adds at 224x224 (convs): ours, exact;
# torchvision's table rounds them to 0.01 G ("GFLOPS" 0.82 and 0.35).
COUNTS = {
    "squeezenet1_0": (1_248_424, 818_924_576, 0.82e9),
    "squeezenet1_1": (1_235_496, 349_151_936, 0.35e9),
}


@pytest.mark.parametrize("name", COUNTS)
def test_counts_are_torchvisions(name):
  params, macs, published = COUNTS[name]
  model = registry.abstract_model(name, reduce=True)
  assert complexity.count_params(model) == params
  assert complexity.module_macs(model, (1, 224, 224, 3)) == macs
  assert abs(macs - published) <= 0.005e9


def test_the_fire_module_without_its_squeeze():
  """fire2 of squeezenet1_0: 96 channels in, squeeze 16, expand 64 + 64. Naive: both expand
  convs read the 96 input channels (96*64 + 64 + 9*96*64 + 64 = 61,568 parameters, against
  96*16+16 + 16*64+64 + 9*16*64+64 = 11,920)."""
  fire = lambda model: dict(model.named_stages())["fire2"]
  reduced = fire(registry.abstract_model("squeezenet1_0", reduce=True))
  naive = fire(registry.abstract_model("squeezenet1_0", reduce=False))
  assert complexity.count_params(reduced) == 11_920
  assert complexity.count_params(naive) == 61_568
  assert reduced.out_features == naive.out_features == 128
  assert dict(reduced.widths) == {"squeeze": 16, "expand 1x1": 64, "expand 3x3": 64}
  assert dict(naive.widths) == {"expand 1x1": 64, "expand 3x3": 64}
  # The squeeze ratio (SqueezeNet's SR study): squeeze = ratio x the input channels.
  sr = fire(
      registry.abstract_model("squeezenet1_0", reduce=True, reduction_ratio=0.5,
                              reduction_activation=False))
  assert dict(sr.widths)["squeeze"] == 48
  squeeze = sr.body.branches[0].layers[0]
  assert squeeze.conv.kernel.shape == (1, 1, 96, 48) and not squeeze.activation


def test_the_expands_3x3_share():
  """pct3x3 (the paper's Fig. 2b): fire2's 128 expand channels split 96 1x1 + 32 3x3 at 0.25
  (96*16+16 + 16*96+96 + 9*16*32+32 = 7,824 parameters), 127 + 1 at 0.01 (each part keeps a
  channel); the other fire modules split alike, and the published split is 0.5."""
  fire2 = lambda **kw: dict(registry.abstract_model("squeezenet1_0", **kw).named_stages())["fire2"]
  quarter = fire2(reduce=True, pct3x3=0.25)
  assert dict(quarter.widths) == {"squeeze": 16, "expand 1x1": 96, "expand 3x3": 32}
  assert complexity.count_params(quarter) == 7_824 and quarter.out_features == 128
  assert dict(fire2(reduce=False, pct3x3=0.01).widths) == {"expand 1x1": 127, "expand 3x3": 1}
  assert squeezenet.split_expand(256, 256, 0.75) == (128, 384)
  assert squeezenet.split_expand(64, 64, 0.5) == (64, 64)
  for bad in (0, 1, 1.5, -0.1, "half"):
    with pytest.raises(
        ConfigError, match=rf"squeezenet1_1: pct3x3={bad!r} is invalid; it "
        r"must be a number > 0 and < 1"):
      registry.abstract_model("squeezenet1_1", reduce=True, pct3x3=bad)


def test_versions_and_their_minimum_inputs():
  assert registry.abstract_model("squeezenet1_0", reduce=True).min_image_size == 21
  assert registry.abstract_model("squeezenet1_1", reduce=True).min_image_size == 17
  with pytest.raises(ConfigError, match=r"unknown SqueezeNet version 'squeezenet1_2'"):
    squeezenet.SqueezeNet(version="1_2", rngs=None)


def test_score_map_of_squeezenet():
  """A conv classifier (1x1 to the classes, ReLU) and global pool: the score map applies the
  conv at every position and averages windows of the map's side at the training size. The
  stride is measured (16), though 64 is no whole number of it: the ceil-mode pools' maps
  still grow by one location per 16 pixels. At the training size the map is the logits."""
  model = registry.random_model("squeezenet1_1", reduce=True, image_size=64, num_classes=5)
  model.eval()
  net = conversions.convolutionalize(model)
  assert (net.stride, net.window, net.pool_first, net.score_map_size(96)) == (16, 3, False, 3)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 96, 80, 3)), jnp.float32)
  assert score_maps(model, net, x, "squeezenet1_1").shape == (1, 3, 2, 5)
