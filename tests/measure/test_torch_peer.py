"""The PyTorch peer is the same computation as ours: parameters, outputs, and clear errors."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

pytest.importorskip("torch")  # the optional extra: pip install -e '.[torch]'
import torch

from bottleneck.measure import benchmark, complexity, torch_peer
from bottleneck.nn import registry
from bottleneck.nn.paths import Paths
from bottleneck.util.errors import ConfigError
from tests import ROOT
from tests.numerics import DEPTH, network_rtol


def _peer(name, reduce):
  c = benchmark.case(name)
  module = registry.fill_random(c.build(reduce, jnp.float32, Paths()))
  x = np.random.default_rng(0).normal(size=(2, c.image_size, c.image_size, c.channels))
  return module, torch_peer.from_nnx(module), x.astype(np.float32)


@pytest.mark.parametrize("reduce,params", [(True, 163_696), (False, 387_296)])
def test_googlenet_3a_twin(reduce, params):
  # Table 1 widths on a 192-channel input, conv weights + biases, derived by hand:
  # reduced 192*64+64 + 192*96+96 + 9*96*128+128 + 192*16+16 + 25*16*32+32 + 192*32+32;
  # naive 192*64+64 + 9*192*128+128 + 25*192*32+32 (the pool passes through).
  module, peer, x = _peer("inception_3a", reduce)
  assert torch_peer.count_params(peer) == params
  torch_peer.check_same(module, peer, x, "3a", rtol=network_rtol(module, 2))  # 1x1 -> 3x3


@pytest.mark.parametrize("name", ["small_downsample", "v3_block_c", "v3_reduction_a"])
def test_padding_and_batch_norm_twins(name):
  """Stride-2 SAME (asymmetric padding), (1, 3) / (3, 1) kernels, Keras batch norm (no scale)."""
  module, peer, x = _peer(name, True)
  assert torch_peer.count_params(peer) == complexity.count_params(module)
  # At most 3 convs in a row in these blocks.
  torch_peer.check_same(module, peer, x, name, rtol=network_rtol(module, 3))


# The naive block (one 3x3 2048 -> 2048, 4 s) goes through the same code as the reduced one.
@pytest.mark.parametrize("reduce", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_residual_block_twin(reduce):
  """ResNet-50's layer4 bottleneck (2048 channels in and out, 7x7; identity shortcut), and
  without its 1x1s."""
  module, peer, x = _peer("resnet_layer4", reduce)
  assert torch_peer.count_params(peer) == complexity.count_params(module)
  torch_peer.check_same(module, peer, x, "resnet_layer4", rtol=network_rtol(module, 3))


@pytest.mark.parametrize("name", ["fire7", "mobilenet_block16"])
def test_fire_and_inverted_residual_twins(name):
  """A bias-only fire module (concatenated expands); a depthwise conv (groups), ReLU6 and the
  input added back."""
  module, peer, x = _peer(name, True)
  assert torch_peer.count_params(peer) == complexity.count_params(module)
  torch_peer.check_same(module, peer, x, name, rtol=network_rtol(module, 3))


def test_network_twin_with_lrn():
  module = registry.random_model("googlenet", reduce=True, image_size=32, num_classes=7)
  peer = torch_peer.from_nnx(module)
  x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  torch_peer.check_same(module, peer, x, "googlenet", rtol=network_rtol(module, DEPTH["googlenet"]))


def test_flatten_dense_head_twin():
  """Flattened in NHWC order, as ours flattens (the twin sees NCHW)."""
  module = registry.random_model("flatten_head_cnn", reduce=True, image_size=8, in_channels=1,
                                 batch_norm=True)
  x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype(np.float32)
  torch_peer.check_same(module, torch_peer.from_nnx(module), x, "flatten_head_cnn")


def test_a_different_peer_is_caught():
  module, peer, x = _peer("small_inception", True)
  with torch.no_grad():
    next(peer.parameters()).mul_(1.01)
  with pytest.raises(RuntimeError, match="not the same computation"):
    torch_peer.check_same(module, peer, x, "small_inception")
  with pytest.raises(ConfigError, match="no PyTorch peer for Linear"):
    torch_peer.from_nnx(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))


def test_time_peer():
  _, peer, _ = _peer("small_inception", False)
  t = torch_peer.time_peer(peer, (1, 96, 28, 28), warmup=0, repeats=1)
  assert t["fwd_ms"] > 0 and t["fwd_bwd_ms"] > 0
  # where ours runs: the CPU (conftest.py), or a GPU where the suite is run on one
  assert t["device"] == torch_peer.device() and t["tf32"] == (t["device"] == "cuda")


def test_gpu_settings_are_xlas():
  """On a GPU the twin computes as XLA does there: TF32 products, algorithms chosen by timing."""
  cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
  saved = (cudnn.allow_tf32, cudnn.benchmark, matmul.allow_tf32)
  cudnn.allow_tf32 = cudnn.benchmark = matmul.allow_tf32 = False
  try:
    torch_peer.gpu_settings()
    assert (cudnn.allow_tf32, cudnn.benchmark, matmul.allow_tf32) == (True, True, True)
  finally:  # PyTorch's flags are per process: the other tests keep theirs
    cudnn.allow_tf32, cudnn.benchmark, matmul.allow_tf32 = saved


def test_the_twin_runs_where_ours_does(monkeypatch, caplog):
  """On a GPU when JAX has one and PyTorch sees one; a CPU-only PyTorch beside a GPU JAX is
  said, since its ratios would compare a GPU with a CPU."""
  monkeypatch.setattr(torch_peer.jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
  assert torch_peer.device() == "cuda"
  monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
  with caplog.at_level("WARNING"):
    assert torch_peer.device() == "cpu"
  assert "its twin runs on the CPU" in caplog.text
  monkeypatch.setattr(torch_peer.jax, "default_backend", lambda: "cpu")
  monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
  assert torch_peer.device() == "cpu"


def test_missing_torch_is_a_clear_error():
  code = ("import sys; sys.modules['torch'] = None\n"
          "try:\n  import bottleneck.measure.torch_peer\n"
          "except Exception as e:\n  print(type(e).__name__, e)\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert "ConfigError the PyTorch peer needs PyTorch: pip install -e '.[torch]'" in proc.stdout
