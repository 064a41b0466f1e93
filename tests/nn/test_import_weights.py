"""Our networks against the references' own code: torchvision's googlenet and inception_v3,
their weights loaded through `bottleneck.nn.import_weights`, give the same logits."""

import collections
import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.nn import import_weights, registry
from bottleneck.util import compat
from bottleneck.util.errors import ConfigError
from tests.numerics import DEPTH, network_rtol

torch = pytest.importorskip("torch")
if importlib.util.find_spec("torchvision") is None:  # its import may fail: see compat
  pytest.skip("torchvision is not installed (the torch extra)", allow_module_level=True)


def _torchvision(name):
  """A torchvision network, random weights and non-trivial batch-norm statistics, eval mode."""
  tvm = compat.torchvision_models()
  torch.manual_seed(0)
  if name.startswith(("resnet", "squeezenet", "mobilenet")):
    net = getattr(tvm, name)(weights=None)
  else:
    net = (tvm.GoogLeNet(aux_logits=False, transform_input=False,
                         init_weights=True) if name == "googlenet_bn" else tvm.Inception3(
                             aux_logits=False, transform_input=False, init_weights=True))
  g = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
        m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
  return net.eval()


def _ours(name):
  kwargs = import_weights.SOURCES["torchvision"][name]["model_kwargs"]
  return registry.random_model(name, reduce=registry.published_reduce(name), **kwargs)


@pytest.mark.parametrize(
    "name,sizes",
    [
        # 201: odd sides, where XLA's SAME and ceil-mode pools would give other grids; 15: the
        # smallest input torchvision's googlenet takes.
        ("googlenet_bn", (224, 160, 201, 15)),
        ("inception_v3", (299, 75)),
        # Odd sides and the 1-pixel minimum: every conv and the max pool pad k // 2 pixels.
        ("resnet18", (97, 1)),
        ("resnet50", (224, 33)),
        # The smallest inputs torchvision's take (one less fails there too).
        ("squeezenet1_0", (224, 21)),
        ("squeezenet1_1", (97, 17)),
        # Depthwise convs, ReLU6; every conv pads, so 1 pixel is enough.
        ("mobilenet_v2", (97, 1)),
    ])
def test_same_logits_as_torchvision(name, sizes):
  net, ours = _torchvision(name), _ours(name)
  import_weights.from_torchvision(ours, net.state_dict())
  ours.eval()
  forward = nnx.jit(lambda m, x: m(x))
  rtol = network_rtol(ours, DEPTH[name])
  for size in sizes:
    x = np.random.default_rng(size).normal(size=(1, size, size, 3)).astype(np.float32)
    with torch.no_grad():
      ref = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(forward(ours, jnp.asarray(x)))
    assert got.shape == ref.shape == (1, 1000)
    assert np.abs(got - ref).max() <= rtol * np.abs(ref).max(), size
  assert ours.min_image_size == {
      "googlenet_bn": 15, "inception_v3": 75, "squeezenet1_0": 21, "squeezenet1_1": 17
  }.get(name, 1)


def test_a_tensor_that_does_not_fit_is_named():
  net, ours = _torchvision("googlenet_bn"), _ours("googlenet_bn")
  good = net.state_dict()

  def load(state):
    with pytest.raises(ConfigError) as e:
      import_weights.from_torchvision(ours, state)
    return str(e.value)

  wrong = collections.OrderedDict(good)
  wrong["inception3a.branch2.1.conv.weight"] = torch.zeros(128, 96, 5, 5)
  assert "tensor 'inception3a.branch2.1.conv.weight' has shape (128, 96, 5, 5); the layer it " \
         "loads into needs (128, 96, 3, 3)" in load(wrong)
  missing = collections.OrderedDict(good)
  del missing["conv2.bn.running_var"]
  assert "tensor 'conv2.bn.running_var' is missing" in load(missing)
  extra = collections.OrderedDict(good)
  extra["fc.scale"] = torch.ones(1000)
  assert "tensor 'fc.scale' has no place in googlenet_bn" in load(extra)
  longer = collections.OrderedDict(good)
  longer["fc2.weight"] = torch.ones(10, 1000)
  assert "tensor 'fc2.weight' has no place in googlenet_bn" in load(longer)
  shorter = collections.OrderedDict((k, v) for k, v in good.items() if not k.startswith("fc."))
  assert "the state dict ends after" in load(shorter)
  # Keras's Inception-v3 has no batch-norm scale: torchvision's weights need bn_use_scale.
  keras_style = registry.random_model("inception_v3", reduce=True)
  with pytest.raises(ConfigError, match="bn_use_scale=True"):
    import_weights.from_torchvision(keras_style, _torchvision("inception_v3").state_dict())


def test_a_resnet_tensor_is_named_by_its_own_key():
  """ResNet's units are `conv1`/`bn1` pairs and `downsample.0`/`.1`: a missing or misfit
  tensor is named as the state dict names it."""
  good = _torchvision("resnet18").state_dict()
  ours = registry.abstract_model("resnet18", reduce=False)
  for key in ("layer1.0.bn1.running_mean", "layer2.0.downsample.1.running_var", "bn1.weight"):
    missing = collections.OrderedDict((k, v) for k, v in good.items() if k != key)
    with pytest.raises(ConfigError, match=rf"tensor '{key}' is missing"):
      import_weights.from_torchvision(registry.fill_random(ours), missing)
  wrong = collections.OrderedDict(good)
  wrong["layer2.0.downsample.0.weight"] = torch.zeros(128, 64, 3, 3)
  with pytest.raises(
      ConfigError, match=r"tensor 'layer2.0.downsample.0.weight' has shape "
      r"\(128, 64, 3, 3\); the layer it loads into needs \(128, 64, 1, 1\)"):
    import_weights.from_torchvision(registry.fill_random(ours), wrong)


def _keras_inception_v3(size: int):
  """Keras's own InceptionV3 for `size` x `size` inputs (logits out), random weights and
  non-trivial batch-norm statistics."""
  keras = import_weights.keras()
  keras.utils.set_random_seed(size)
  net = keras.applications.InceptionV3(weights=None, classifier_activation=None,
                                       input_shape=(size, size, 3))
  rng = np.random.default_rng(size)
  for layer in net.layers:
    if type(layer).__name__ == "BatchNormalization":
      shape = layer.moving_mean.shape
      layer.moving_mean.assign(rng.normal(size=shape).astype(np.float32) * 0.1)
      layer.moving_variance.assign(rng.random(shape).astype(np.float32) + 0.5)
      layer.beta.assign(rng.normal(size=shape).astype(np.float32) * 0.1)
  return net


@pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="Keras is not installed (the keras extra)")
def test_same_logits_as_keras(tmp_path):
  """Keras's InceptionV3 (Keras 3 on JAX) into our default inception_v3: batch norm without a
  scale, average pools that divide by their real taps."""
  forward = nnx.jit(lambda m, x: m(x))  # one compile, not one per op
  for size in (75,):  # 299 too by hand (docs/reference_weights.md): a Keras build is 16 s
    net = _keras_inception_v3(size)
    ours = registry.random_model("inception_v3", reduce=True)
    import_weights.from_keras(ours, net)
    ours.eval()
    x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
    ref = np.asarray(net.predict(x, verbose=0))  # one compiled program, not one per op
    got = np.asarray(forward(ours, jnp.asarray(x)))
    assert got.shape == ref.shape == (2, 1000)
    assert np.abs(got - ref).max() <= network_rtol(ours,
                                                   DEPTH["inception_v3"]) * np.abs(ref).max(), size
  # The same weights through a .weights.h5 file (into the same Keras network, its first conv
  # zeroed first: a second build would take 16 s): the same network again.
  path = str(tmp_path / "inception v3.weights.h5")
  net.save_weights(path)
  first = next(layer for layer in net.layers if type(layer).__name__ == "Conv2D")
  first.kernel.assign(np.zeros(first.kernel.shape, np.float32))
  import_weights.load_keras_weights(net, path)
  again = registry.random_model("inception_v3", reduce=True, image_size=75)
  import_weights.from_keras(again, net)
  again.eval()
  np.testing.assert_array_equal(np.asarray(forward(again, jnp.asarray(x))), got)
  (tmp_path / "bad.weights.h5").write_bytes(b"not hdf5")
  for bad in ("bad.weights.h5", "missing.weights.h5"):
    with pytest.raises(ConfigError, match="is not a Keras weights file|does not exist"):
      import_weights.keras_inception_v3(str(tmp_path / bad))
  # Keras's weights do not fit torchvision's style (a learned batch-norm scale): named.
  tv_style = registry.random_model("inception_v3", reduce=True, bn_use_scale=True)
  with pytest.raises(ConfigError, match=r"tensor '.*moving_mean' .*|tensor '.*gamma' is "
                     r"missing"):
    import_weights.from_keras(tv_style, net)
  keras = import_weights.keras()
  small = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
  with pytest.raises(ConfigError, match="the Keras model ends after 1 layers; inception_v3 "
                     "has 95"):
    import_weights.from_keras(ours, small)
