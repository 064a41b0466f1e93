"""ResNet (`bottleneck.nn.resnet`): torchvision's counts, and the bottleneck block with and
without its 1x1s. Its logits against torchvision's own: tests/nn/test_import_weights.py."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import conversions, registry, resnet
from bottleneck.util.errors import ConfigError
from tests.numerics import DEPTH, network_rtol

# Parameters: torchvision's model table. Multiply-adds at 224x224 (convs and the linear layer):
# ours, exact; torchvision's table gives them rounded to 0.01 G ("GFLOPS" 1.81, 3.66, 4.09).
COUNTS = {
    "resnet18": (11_689_512, 1_814_073_344, 1.81e9),
    "resnet34": (21_797_672, 3_663_761_408, 3.66e9),
    "resnet50": (25_557_032, 4_089_184_256, 4.09e9),
}


@pytest.mark.parametrize("name", COUNTS)
def test_counts_are_torchvisions(name):
  params, macs, published = COUNTS[name]
  model = registry.abstract_model(name, reduce=registry.published_reduce(name))
  assert complexity.count_params(model) == params
  assert complexity.module_macs(model, (1, 224, 224, 3)) == macs
  assert abs(macs - published) <= 0.005e9


def test_the_bottleneck_without_its_1x1s_is_one_3x3_at_full_width():
  reduced = registry.abstract_model("resnet50", reduce=True)
  naive = registry.abstract_model("resnet50", reduce=False)
  kernels = lambda block: [u.conv.kernel.shape for u in block.units()]
  first = dict(reduced.named_stages())["layer1_0"]
  # 1x1 reduce, 3x3, 1x1 expand, then the projection shortcut (64 -> 256 channels).
  assert kernels(first) == [(1, 1, 64, 64), (3, 3, 64, 64), (1, 1, 64, 256), (1, 1, 64, 256)]
  assert [u.activation for u in first.units()] == [True, True, False, False]
  assert kernels(dict(naive.named_stages())["layer1_0"]) == [(3, 3, 64, 256), (1, 1, 64, 256)]
  later = dict(naive.named_stages())["layer3_1"]  # same channels in and out: the identity
  assert kernels(later) == [(3, 3, 1024, 1024)] and later.shortcut is None
  assert later.widths == (("3x3", 1024),)
  # Same input and output channels, so the same stages and shapes; 6.3x the parameters and
  # multiply-adds.
  assert naive.stage_names == reduced.stage_names
  assert complexity.count_params(naive) == 160_726_312
  assert complexity.module_macs(naive, (1, 224, 224, 3)) == 25_912_934_400


def test_the_papers_knobs_ratio_and_activation():
  model = registry.abstract_model("resnet50", reduce=True, reduction_ratio=0.5,
                                  reduction_activation=False)
  block = dict(model.named_stages())["layer2_1"]  # 512 channels in, 128 planes published
  assert [u.conv.kernel.shape[-1] for u in block.units()] == [256, 256, 512]
  assert dict(block.widths)["1x1 reduce"] == 256
  assert not block.units()[0].activation
  # The stride of a downsampling block is in its 3x3 (torchvision's v1.5) and its shortcut.
  down = dict(model.named_stages())["layer2_0"]
  assert [u.strides for u in down.units()] == [(1, 1), (2, 2), (1, 1), (2, 2)]


def test_basic_block_resnets_have_one_variant():
  with pytest.raises(
      ConfigError, match=r"model 'resnet18' has one variant, reduce=False: "
      r"torchvision's resnet18: basic blocks"):
    registry.abstract_model("resnet18", reduce=True)
  model = registry.abstract_model("resnet34", reduce=False)
  block = dict(model.named_stages())["layer1_0"]
  assert [u.conv.kernel.shape for u in block.units()] == [(3, 3, 64, 64), (3, 3, 64, 64)]
  assert not block.reduce and not model.reduce
  with pytest.raises(
      ConfigError, match=r"resnet50: place '5x5'|names 5x5, where model "
      r"'resnet50' has no reduction"):
    registry.abstract_model("resnet50", reduce=True, reduction_places="5x5")
  with pytest.raises(ConfigError, match=r"unknown block kind 'wide'"):
    resnet.Residual(64, 64, kind="wide", rngs=None)


def test_score_map_of_a_resnet():
  """Global pool and linear head: `conversions.convolutionalize` turns it into a score map
  (stride 32), equal to the logits at the training size."""
  model = registry.random_model("resnet18", reduce=False, width=0.125, image_size=64, num_classes=5)
  model.eval()
  net = conversions.convolutionalize(model)
  assert (net.stride, net.window, net.score_map_size(128)) == (32, 2, 3)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 128, 128, 3)), jnp.float32)
  scores = nnx.jit(lambda m, x: m(x))(net, x)
  assert scores.shape == (1, 3, 3, 5)
  logits = nnx.jit(lambda m, x: m(x))(model, x[:, :64, :64])
  at_size = nnx.jit(lambda m, x: m(x))(net, x[:, :64, :64])[:, 0, 0]
  # The same network but for the pool and the head's sum order: within the float32 estimate
  # of a network this deep (tests/numerics.py).
  assert float(jnp.abs(at_size - logits).max()) <= \
      network_rtol(model, DEPTH["resnet18"]) * float(jnp.abs(logits).max())
