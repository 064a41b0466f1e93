"""MobileNetV2 (`bottleneck.nn.mobilenet`): torchvision's counts, and the inverted residual with
and without its 1x1s. Its logits against torchvision's own: tests/nn/test_import_weights.py."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import conversions, layers, registry
from bottleneck.util.errors import ConfigError
from tests.numerics import score_maps


def test_counts_are_torchvisions():
  """3,504,872 parameters (torchvision's table); 0.30 G multiply-adds at 224 there, rounded
  (ours exact; a depthwise conv's multiply-adds are its taps, one input channel each)."""
  model = registry.abstract_model("mobilenet_v2", reduce=True)
  assert complexity.count_params(model) == 3_504_872
  macs = complexity.module_macs(model, (1, 224, 224, 3))
  assert macs == 300_774_272 and abs(macs - 0.30e9) <= 0.005e9
  # Its 1x1s expand: without them (one 3x3 a block) the network is smaller.
  naive = registry.abstract_model("mobilenet_v2", reduce=False)
  assert complexity.count_params(naive) == 3_145_736
  assert complexity.module_macs(naive, (1, 224, 224, 3)) == 257_528_832


def test_the_inverted_residual_with_and_without_its_1x1s():
  reduced = dict(registry.abstract_model("mobilenet_v2", reduce=True).named_stages())
  naive = dict(registry.abstract_model("mobilenet_v2", reduce=False).named_stages())
  units = lambda block: list(block.body.layers)
  # block3: 24 -> 24 channels, stride 1: expand 6x to 144, depthwise, linear projection, and
  # the input added back.
  b = reduced["block3"]
  assert [u.conv.kernel.shape for u in units(b)] == [(1, 1, 24, 144), (3, 3, 1, 144),
                                                     (1, 1, 144, 24)]
  assert [u.groups for u in units(b)] == [1, 144, 1]
  assert [u.activation for u in units(b)] == ["relu6", "relu6", False]
  assert b.residual and not reduced["block2"].residual  # 16 -> 24 at stride 2
  # The first block has t = 1: no expansion.
  assert [u.conv.kernel.shape for u in units(reduced["block1"])] == [(3, 3, 1, 32), (1, 1, 32, 16)]
  assert dict(reduced["block1"].widths) == {"3x3 depthwise": 32, "1x1 project": 16}
  assert dict(b.widths) == {"1x1 expand": 144, "3x3 depthwise": 144, "1x1 project": 24}
  # Naive: one full 3x3 from the block's input to its output channels, the same residual.
  assert [u.conv.kernel.shape for u in units(naive["block3"])] == [(3, 3, 24, 24)]
  assert naive["block3"].residual


def test_the_papers_knobs_and_a_bad_group_count():
  # Fig. 6: ReLU6 after the projection instead of a linear bottleneck; the expansion ratio.
  model = registry.abstract_model("mobilenet_v2", reduce=True, reduction_activation=True,
                                  expansion=4.0)
  block = dict(model.named_stages())["block3"]
  assert [u.activation for u in block.body.layers][-1] == "relu6"
  assert block.body.layers[0].conv.kernel.shape == (1, 1, 24, 96)
  with pytest.raises(ConfigError, match=r"groups=4 must divide in_features=6"):
    layers.ConvUnit(6, 8, 3, groups=4, rngs=nnx.Rngs(0))
  with pytest.raises(ConfigError, match=r"unknown activation 'gelu'"):
    layers.ConvUnit(4, 4, 3, activation="gelu", rngs=nnx.Rngs(0))


def test_an_expansion_that_leaves_no_channel_is_said_of_the_argument():
  """expansion=0.01 was refused as "block2/expand: out_features=0 is invalid", an inner layer;
  now as the argument, and from a config as model_kwargs.expansion. The naive network has no
  expanding 1x1 and takes it."""
  from bottleneck.train import run_config
  with pytest.raises(
      ConfigError, match=r"mobilenet_v2: expansion=0.01 is too small: block2's "
      r"expanding 1x1 would have round\(16 x 0.01\) = 0 channels; at this width "
      r"it must be more than 0.0312\."):
    registry.abstract_model("mobilenet_v2", reduce=True, expansion=0.01)
  registry.abstract_model("mobilenet_v2", reduce=False, expansion=0.01)
  config = run_config.default_config()
  config.model, config.model_kwargs.expansion, config.image_size = "mobilenet_v2", 0.01, 32
  with pytest.raises(ConfigError, match=r"mobilenet_v2: model_kwargs.expansion=0.01 is too small"):
    run_config.validate(config)


def test_depthwise_unit_is_one_conv_per_channel():
  """A depthwise unit equals each channel convolved alone."""
  unit = layers.ConvUnit(3, 3, 3, groups=3, activation=False, padding=1,
                         style=layers.ConvStyle(batch_norm=False), rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, 5, 3)), jnp.float32)
  y = unit(x)
  for c in range(3):
    alone = layers.ConvUnit(1, 1, 3, activation=False, padding=1,
                            style=layers.ConvStyle(batch_norm=False), rngs=nnx.Rngs(0))
    alone.conv.kernel[...] = unit.conv.kernel[...][:, :, :, c:c + 1]
    alone.conv.bias[...] = unit.conv.bias[...][c:c + 1]
    # Each computation of a 9-product sum is within 9u x sum|x w| <= 9u x 9 max|x| max|w| of
    # the exact value (u = 2^-24), so the two within twice that.
    bound = 2 * 9 * 9 * 2**-24 * float(jnp.abs(x).max() * jnp.abs(unit.conv.kernel[...]).max())
    np.testing.assert_allclose(y[..., c:c + 1], alone(x[..., c:c + 1]), rtol=0, atol=bound)


def test_score_map_of_mobilenet():
  """Global pool and linear head: a score map with stride 32, equal to the logits at the
  training size within the float32 estimate of a network this deep."""
  model = registry.random_model("mobilenet_v2", reduce=True, image_size=64, num_classes=5)
  model.eval()
  net = conversions.convolutionalize(model)
  assert (net.stride, net.window, net.score_map_size(96)) == (32, 2, 2)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 96, 96, 3)), jnp.float32)
  assert score_maps(model, net, x, "mobilenet_v2").shape == (1, 2, 2, 5)


def test_width_scales_every_block_but_the_last_conv():
  """`width` rounds each published width (torchvision rounds to multiples of 8: the two agree
  at 1.0); the last conv keeps 1280, as torchvision's below width 1; `width_extra` widens the
  first widths by a channel, so that a budget can be matched at equal compute."""
  model = registry.abstract_model("mobilenet_v2", reduce=True, width=0.5)
  stages = dict(model.named_stages())
  assert stages["conv1"].out_features == 16
  assert [stages[f"block{i}"].out_features for i in (1, 2, 4, 17)] == [8, 12, 16, 160]
  assert stages["conv_last"].out_features == 1280
  assert model.width_bases[:3] == (32, 16, 24) and len(model.width_bases) == 18
  wider = registry.abstract_model("mobilenet_v2", reduce=True, width=0.5, width_extra=2)
  assert dict(wider.named_stages())["block1"].out_features == 9
  with pytest.raises(ConfigError, match=r"width_extra=19 is invalid; the network has 18 widths"):
    registry.abstract_model("mobilenet_v2", reduce=True, width=0.5, width_extra=19)
