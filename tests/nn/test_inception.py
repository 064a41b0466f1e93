"""Whole networks: parameter counts of the reference implementations, derived by hand here from
the published architectures; forwards at the smallest valid input; clear errors below it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import complexity
from bottleneck.nn import inception, registry
from bottleneck.util.errors import ConfigError

# --- torchvision googlenet (aux_logits=False): BasicConv2d = conv without bias + batch norm
# with scale and offset; 3x3 in the "5x5" branch; fc 1024 -> 1000 with bias.


def torchvision_conv(cin, cout, k):
  return k * k * cin * cout + 2 * cout


def torchvision_googlenet_params():
  total = (torchvision_conv(3, 64, 7) + torchvision_conv(64, 64, 1) + torchvision_conv(64, 192, 3))
  cin = 192
  for n1, r3, n3, r5, n5, pp in [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64),
                                 (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
                                 (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                                 (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128),
                                 (384, 192, 384, 48, 128, 128)]:
    total += (torchvision_conv(cin, n1, 1) + torchvision_conv(cin, r3, 1)
              + torchvision_conv(r3, n3, 3) + torchvision_conv(cin, r5, 1)
              + torchvision_conv(r5, n5, 3) + torchvision_conv(cin, pp, 1))
    cin = n1 + n3 + n5 + pp
  return total + 1024 * 1000 + 1000


def test_googlenet_bn_matches_torchvision():
  expected = torchvision_googlenet_params()
  assert expected == 6_624_904  # torchvision's published count for googlenet
  model = registry.abstract_model("googlenet_bn", reduce=True)
  assert complexity.count_params(model) == expected


def test_googlenet_geometry_is_one_value():
  """Caffe's and torchvision's GoogLeNets differ in three places, one `GoogLeNetGeometry`;
  a config still sets them one by one (flat `model_kwargs`)."""
  assert inception.TORCHVISION == inception.GoogLeNetGeometry(lrn=False, branch5_kernel=3,
                                                              pool4_window=2)
  caffe_bn = registry.abstract_model("googlenet_bn", reduce=True, lrn=True, branch5_kernel=5,
                                     pool4_window=3)
  assert [n for n, _ in caffe_bn.named_stages()][:4] == ["conv1", "pool1", "lrn1", "conv2"]
  assert dict(caffe_bn.named_stages())["pool4"].window == (3, 3)  # as Caffe's
  with pytest.raises(ConfigError, match=r"unknown branch5_kernel 7; valid: 3, 5"):
    inception.GoogLeNetGeometry(branch5_kernel=7)
  with pytest.raises(ConfigError, match=r"unknown pool4_window 4; valid: 2, 3"):
    registry.abstract_model("googlenet", reduce=True, pool4_window=4)


# --- Keras InceptionV3 (include_top=True): conv without bias + batch norm without scale, so a
# conv has k_h*k_w*cin*cout weights + cout offsets trainable, and 2*cout running statistics.


def keras_inception_v3_counts():
  convs = [(3, 32, 3, 3), (32, 32, 3, 3), (32, 64, 3, 3), (64, 80, 1, 1), (80, 192, 3, 3)]
  cin = 192
  for pool in (32, 64, 64):  # mixed0-2 (block A)
    convs += [(cin, 64, 1, 1), (cin, 48, 1, 1), (48, 64, 5, 5), (cin, 64, 1, 1), (64, 96, 3, 3),
              (96, 96, 3, 3), (cin, pool, 1, 1)]
    cin = 64 + 64 + 96 + pool
  convs += [(cin, 384, 3, 3), (cin, 64, 1, 1), (64, 96, 3, 3), (96, 96, 3, 3)]  # mixed3
  cin += 384 + 96
  for c in (128, 160, 160, 192):  # mixed4-7 (block B)
    convs += [(cin, 192, 1, 1), (cin, c, 1, 1), (c, c, 1, 7), (c, 192, 7, 1), (cin, c, 1, 1),
              (c, c, 7, 1), (c, c, 1, 7), (c, c, 7, 1), (c, 192, 1, 7), (cin, 192, 1, 1)]
    cin = 768
  convs += [(cin, 192, 1, 1), (192, 320, 3, 3), (cin, 192, 1, 1), (192, 192, 1, 7),
            (192, 192, 7, 1), (192, 192, 3, 3)]  # mixed8
  cin += 320 + 192
  for _ in range(2):  # mixed9-10 (block C)
    convs += [(cin, 320, 1, 1), (cin, 384, 1, 1), (384, 384, 1, 3), (384, 384, 3, 1),
              (cin, 448, 1, 1), (448, 384, 3, 3), (384, 384, 1, 3), (384, 384, 3, 1),
              (cin, 192, 1, 1)]
    cin = 2048
  trainable = sum(ci * co * kh * kw + co for ci, co, kh, kw in convs) + 2048 * 1000 + 1000
  stats = sum(2 * co for _, co, _, _ in convs)
  return trainable, stats


def test_inception_v3_matches_keras():
  trainable, stats = keras_inception_v3_counts()
  # Keras' summary: 23,851,784 total = 23,817,352 trainable + 34,432 non-trainable.
  assert (trainable, stats) == (23_817_352, 34_432)
  model = registry.abstract_model("inception_v3", reduce=True)
  assert complexity.count_params(model) == trainable
  assert complexity.count_batch_stats(model) == stats


def test_inception_v3_with_torchvision_batch_norm_scale():
  trainable, _ = keras_inception_v3_counts()
  model = registry.abstract_model("inception_v3", reduce=True, bn_use_scale=True)
  assert complexity.count_params(model) == trainable + 34_432 // 2  # one scale per channel


def test_inception_small_matches_zhang_et_al():
  # C(k, ch): k*k*cin*ch weights + ch biases (the paper's count); batch norm adds 2*ch apart.
  units, cin = [(3, 3, 96)], 96
  for kind, *w in inception.SMALL_INCEPTION_LAYOUT:
    if kind == "I":
      units += [(1, cin, w[0]), (3, cin, w[1])]
      cin = w[0] + w[1]
    else:
      units += [(3, cin, w[0])]
      cin += w[0]
  paper = sum(k * k * ci * co + co for k, ci, co in units) + cin * 10 + 10
  assert paper == 1_649_402  # Zhang et al. 2017, Table 1, "Inception"
  model = registry.abstract_model("inception_small", reduce=False)
  batch_norm = sum(2 * co for _, _, co in units)
  assert complexity.count_params(model) == paper + batch_norm


def test_inception_small_width_multiplier_and_channels():
  model = registry.abstract_model("inception_small", reduce=True, width=0.5, in_channels=1,
                                  image_size=8)
  assert model.stages[0].out_features == 48
  assert model.in_channels == 1


def test_naive_googlenet_keeps_the_pool_passthrough():
  model = registry.abstract_model("googlenet", reduce=False)
  blocks = dict(model.named_stages())
  assert blocks["inception_3a"].out_features == 192 + 64 + 128 + 32
  assert blocks["inception_3b"].in_features == blocks["inception_3a"].out_features


ALL = [(name, reduce) for name, spec in registry.MODELS.items() for reduce in spec.variants]
# The naive ResNet-50 (160M parameters, 7 s to fill and compile) runs the code of resnet34's
# blocks (a 3x3 then the shortcut) and resnet50's network: those two cover it.
_SLOW = {("resnet50", False)}


@pytest.mark.parametrize(
    "name,reduce",
    [pytest.param(n, r, marks=pytest.mark.slow) if (n, r) in _SLOW else (n, r) for n, r in ALL],
    ids=[f"{n}-{'reduced' if r else 'naive'}" for n, r in ALL])
def test_jitted_forward_at_the_smallest_valid_input(name, reduce):
  probe = registry.abstract_model(name, reduce=reduce)
  size = probe.min_image_size
  model = registry.random_model(name, reduce=reduce, image_size=size, num_classes=7)
  model.eval()
  x = jnp.asarray(
      np.random.default_rng(0).normal(size=(2, size, size, probe.in_channels)), jnp.float32)
  logits = nnx.jit(lambda m, x: m(x))(model, x)
  assert logits.shape == (2, 7)
  assert bool(jnp.all(jnp.isfinite(logits)))
  with pytest.raises(ConfigError, match=rf"too small; the minimum is {size}"):
    model(x[:, 1:, 1:])
  with pytest.raises(ConfigError, match=rf"image_size={size - 1} is too small; the minimum "
                     rf"is {size}"):
    registry.create_model(name, reduce=reduce, image_size=size - 1)


def test_inception_v3_aux_head():
  model = registry.random_model("inception_v3", reduce=True, aux_logits=True, num_classes=3)
  assert model.min_image_size == 299
  model.eval()
  logits, aux = nnx.jit(lambda m, x: m(x, return_aux=True))(model, jnp.zeros((1, 299, 299, 3)))
  assert logits.shape == aux.shape == (1, 3)
  plain = registry.abstract_model("inception_v3", reduce=True, image_size=75)
  with pytest.raises(ConfigError, match="aux_logits=True"):
    plain(jnp.zeros((1, 75, 75, 3)), return_aux=True)


def test_wrong_channel_count_is_a_clear_error():
  model = registry.abstract_model("inception_small", reduce=False, width=0.25)
  with pytest.raises(ConfigError, match=r"expected \(batch, height, width, 3\)"):
    model(jnp.zeros((1, 28, 28, 1)))


def test_train_mode_updates_batch_stats_and_bfloat16_runs():
  model = registry.random_model("inception_small", reduce=True, width=0.25, image_size=8,
                                dtype=jnp.bfloat16)
  before = jax.tree.map(jnp.copy, nnx.state(model, nnx.BatchStat))
  model.train()
  out = nnx.jit(lambda m, x: m(x))(model, jnp.ones((4, 8, 8, 3)))
  assert out.dtype == jnp.bfloat16
  after = nnx.state(model, nnx.BatchStat)
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, after))
  assert any(changed)
