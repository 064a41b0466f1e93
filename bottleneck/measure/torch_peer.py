"""PyTorch peers of our blocks and networks, timed in the same run as ours.

Optional: needs `pip install -e '.[torch]'` (torch==2.13.0, a CPU build on this project's
machines). `from_nnx(module)` walks any block or network of this package (conv units, branch
concatenations, sequences, pools, LRN, the classifier head) and builds its PyTorch twin with the
same weights, so that `check_same` can verify, on real numbers, that the peer computes what ours
does before either is timed. The peer runs NCHW, PyTorch's default layout, and each op in its
natural form: a conv with symmetric padding pads itself; only TF-style SAME padding that is
asymmetric (some stride-2 layers) gets an explicit pad first.
"""

from __future__ import annotations

import copy
import statistics
import time

import jax
import numpy as np
from absl import logging
from flax import nnx

from bottleneck.measure import numerics
from bottleneck.nn import blocks, fc_head, layers, mobilenet, network, nin, resnet
from bottleneck.nn.paths import window_geometry
from bottleneck.util.errors import ConfigError

try:
  import torch
  import torch.nn.functional as F
  from torch import nn
except ImportError:
  raise ConfigError("the PyTorch peer needs PyTorch: pip install -e '.[torch]'") from None


class _Padded(nn.Module):
  """`op` (built without padding) after XLA-style padding with `fill`; the op pads itself
  where the padding is symmetric, which it is for every stride-1 odd kernel."""

  def __init__(self, op, kernel, stride, padding, fill):
    super().__init__()
    self.op, self.kernel, self.stride, self.padding, self.fill = (op, kernel, stride, padding, fill)

  def forward(self, x):
    (t, b, _), (l, r, _) = (window_geometry(x.shape[2 + a], self.kernel[a], self.stride[a],
                                            self.padding) for a in (0, 1))
    return self.op(F.pad(x, (l, r, t, b), value=self.fill) if (t, b, l, r) != (0,) * 4 else x)


def _padded(make, kernel, stride, padding, fill):
  """`make(padding)` with its own symmetric padding where that is exact, else `_Padded`."""
  if padding == "VALID":
    return make(0)
  if not isinstance(padding, str):  # explicit: symmetric, as PyTorch pads
    return make(tuple(before for before, _ in padding))
  if all(s == 1 and k % 2 == 1 for k, s in zip(kernel, stride)):
    return make(tuple(k // 2 for k in kernel))
  return _Padded(make(0), kernel, stride, padding, fill)


def _tensor(value) -> torch.Tensor:
  return torch.from_numpy(np.array(value, dtype=np.float32))


def _conv_unit(unit: layers.ConvUnit) -> nn.Module:
  conv = unit.conv
  kernel, stride = unit.kernel_size, unit.strides
  torch_conv = _padded(
      lambda p: nn.Conv2d(unit.in_features, unit.out_features, kernel, stride, p, groups=unit.
                          groups, bias=conv.bias is not None), kernel, stride, unit.padding, 0.0)
  inner = torch_conv.op if isinstance(torch_conv, _Padded) else torch_conv
  with torch.no_grad():
    inner.weight.copy_(_tensor(conv.kernel[...]).permute(3, 2, 0, 1))  # HWIO -> OIHW
    if conv.bias is not None:
      inner.bias.copy_(_tensor(conv.bias[...]))
  out = [torch_conv]
  if unit.norm is not None:
    norm = unit.norm
    bn = nn.BatchNorm2d(unit.out_features, eps=norm.epsilon, momentum=1 - norm.momentum)
    with torch.no_grad():
      bn.running_mean.copy_(_tensor(norm.mean[...]))
      bn.running_var.copy_(_tensor(norm.var[...]))
      bn.bias.copy_(_tensor(norm.bias[...]))
      if norm.scale is not None:
        bn.weight.copy_(_tensor(norm.scale[...]))
      else:  # Keras-style batch norm learns no scale: fixed at 1, not a parameter
        bn.weight.fill_(1.0)
        bn.weight.requires_grad_(False)
    out.append(bn)
  if unit.activation:
    out.append(nn.ReLU6() if unit.activation == "relu6" else nn.ReLU())
  return nn.Sequential(*out)


def _pool(pool, kind: str) -> nn.Module:
  if kind == "max":
    make = lambda p: nn.MaxPool2d(pool.window, pool.stride, p, ceil_mode=getattr(
        pool, "ceil_mode", False))
  else:  # count_pad: padded taps count as zeros (count_include_pad); else only real taps
    make = lambda p: nn.AvgPool2d(pool.window, pool.stride, p, ceil_mode=pool.ceil_mode,
                                  count_include_pad=pool.count_pad)
  out = _padded(make, pool.window, pool.stride, pool.padding,
                -float("inf") if kind == "max" else 0.0)
  if kind == "avg" and not pool.count_pad and isinstance(out, _Padded):
    raise NotImplementedError("an average pool that pads unevenly and divides by its real "
                              "taps has no PyTorch twin here.")
  return out


class _Concat(nn.Module):

  def __init__(self, branches):
    super().__init__()
    self.branches = nn.ModuleList(branches)

  def forward(self, x):
    return torch.cat([b(x) for b in self.branches], dim=1)


class _Head(nn.Module):

  def __init__(self, head: layers.ClassifierHead):
    super().__init__()
    self.dropout = nn.Dropout(head.dropout.rate)
    self.dense = _linear(head.dense)

  def forward(self, x):
    return self.dense(self.dropout(x.mean(dim=(2, 3))))


class _FlattenDense(nn.Module):
  """Flatten in our NHWC order, Dense, ReLU, Dense (`fc_head.FlattenDenseHead`)."""

  def __init__(self, head: fc_head.FlattenDenseHead):
    super().__init__()
    self.hidden, self.out = (_linear(d) for d in (head.hidden, head.out))

  def forward(self, x):
    return self.out(F.relu(self.hidden(x.permute(0, 2, 3, 1).flatten(1))))


def _linear(dense: nnx.Linear) -> nn.Linear:
  out = nn.Linear(dense.in_features, dense.out_features)
  with torch.no_grad():
    out.weight.copy_(_tensor(dense.kernel[...]).T)
    out.bias.copy_(_tensor(dense.bias[...]))
  return out


class _ConvClassifier(nn.Module):

  def __init__(self, head: layers.ConvClassifier):
    super().__init__()
    self.dropout = nn.Dropout(head.dropout.rate)
    self.conv = from_nnx(head.conv)

  def forward(self, x):
    return self.conv(self.dropout(x)).mean(dim=(2, 3))


class _Residual(nn.Module):

  def __init__(self, block: resnet.Residual):
    super().__init__()
    self.body = from_nnx(block.body)
    self.shortcut = None if block.shortcut is None else from_nnx(block.shortcut)

  def forward(self, x):
    return torch.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))


class _InvertedResidual(nn.Module):

  def __init__(self, block: mobilenet.InvertedResidual):
    super().__init__()
    self.body = from_nnx(block.body)
    self.residual = block.residual

  def forward(self, x):
    return x + self.body(x) if self.residual else self.body(x)


def from_nnx(module: nnx.Module) -> nn.Module:
  """The PyTorch twin of a block or network of this package, with its weights and statistics."""
  if isinstance(module, layers.ConvUnit):
    return _conv_unit(module)
  if isinstance(module, blocks.InceptionBase):
    return from_nnx(module.body)
  if isinstance(module, blocks.Concat):
    return _Concat([from_nnx(b) for b in module.branches])
  if isinstance(module, resnet.Residual):
    return _Residual(module)
  if isinstance(module, mobilenet.InvertedResidual):
    return _InvertedResidual(module)
  if isinstance(module, nin.MlpConv):
    return from_nnx(module.body)
  if isinstance(module, nnx.Dropout):
    return nn.Dropout(module.rate)
  if isinstance(module, nnx.Sequential):
    return nn.Sequential(*(from_nnx(m) for m in module.layers))
  if isinstance(module, network.Network):
    if module.side_heads():
      raise ConfigError(f"{module.name}: the PyTorch peer has no side heads (aux_logits).")
    return nn.Sequential(*(from_nnx(m) for m in module.stages))
  if isinstance(module, layers.MaxPool):
    return _pool(module, "max")
  if isinstance(module, layers.AvgPool):
    return _pool(module, "avg")
  if isinstance(module, layers.LocalResponseNorm):
    return nn.LocalResponseNorm(module.size, module.alpha, module.beta, module.k)
  if isinstance(module, layers.ClassifierHead):
    return _Head(module)
  if isinstance(module, layers.ConvClassifier):
    return _ConvClassifier(module)
  if isinstance(module, fc_head.FlattenDenseHead):
    return _FlattenDense(module)
  raise ConfigError(
      f"no PyTorch peer for {type(module).__name__}; known: conv units, Inception "
      "and fire blocks, residual and inverted residual blocks, mlpconv, Concat, "
      "Sequential, networks, max/avg pools, LRN, dropout, classifier heads, flatten + Dense.")


def count_params(peer: nn.Module) -> int:
  """Trainable parameter elements, counted as `complexity.count_params` counts."""
  return sum(p.numel() for p in peer.parameters() if p.requires_grad)


def check_same(module: nnx.Module, peer: nn.Module, x: np.ndarray, name: str,
               rtol: float | None = None) -> float:
  """Raises RuntimeError unless `peer` gives `module`'s output (eval mode) on NHWC `x` to
  within `rtol` (default: what float32 rounding allows, `numerics.float32_rtol`).

  Returns the largest difference relative to the largest output magnitude.
  """
  rtol = numerics.float32_rtol(module) if rtol is None else rtol
  module.eval()
  # Full float32 products: on a GPU, XLA's default computes float32 convs and matmuls as
  # TensorFloat-32 (10-bit mantissas), a rounding this check is not about.
  with jax.default_matmul_precision("highest"):
    ours = np.asarray(nnx.jit(lambda m, v: m(v))(module, x))  # one program, not one per op
  peer.eval()
  with torch.no_grad():
    theirs = peer(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
  if theirs.ndim == 4:
    theirs = theirs.transpose(0, 2, 3, 1)
  if theirs.shape != ours.shape:
    raise RuntimeError(f"{name}: the PyTorch peer outputs {theirs.shape}, ours {ours.shape}.")
  err = float(np.max(np.abs(theirs - ours)) / max(float(np.max(np.abs(ours))), 1e-30))
  if not err <= rtol:
    raise RuntimeError(f"{name}: the PyTorch peer differs from ours by {err:.2e} (relative, "
                       f"rounding allows {rtol:.2e}); it is not the same computation.")
  return err


def device() -> str:
  """Where the twin runs: "cuda" when JAX computes on a GPU and this PyTorch sees one, else
  "cpu". Ours and the twin are timed on the same device, except where JAX has a GPU and this
  PyTorch (a CPU build) does not: then it says so, once."""
  if jax.default_backend() != "gpu":
    return "cpu"
  if torch.cuda.is_available():
    return "cuda"
  logging.log_first_n(
      logging.WARNING, "JAX computes on a GPU but this PyTorch %s sees none: its twin runs on "
      "the CPU, so JAX/PyTorch ratios compare a GPU with a CPU (rows say torch_device=cpu).", 1,
      torch.__version__)
  return "cpu"


def time_peer(peer: nn.Module, shape_nchw, *, compile_: bool = False, warmup: int = 1,
              repeats: int = 5) -> dict:
  """Forward (eval mode, no grad) and forward+backward (train mode; gradients w.r.t. the
  parameters and the input) medians in ms, timed as `bottleneck.measure.benchmark` times ours, on
  `device()` (a copy of `peer` goes there).

  On a GPU each call is waited for (`torch.cuda.synchronize`); float32 convs and matmuls run as
  TensorFloat-32, as XLA computes ours by default there (PyTorch's own default keeps its
  matmuls in full float32); and cuDNN times its algorithms for each conv on the first call
  (`cudnn.benchmark`), as XLA autotunes ours. The dict says which: "device", "tf32".
  """
  torch.manual_seed(0)
  where = device()
  on_gpu = where == "cuda"
  if on_gpu:
    peer = copy.deepcopy(peer).to(where)
  model = torch.compile(peer) if compile_ else peer
  x = torch.randn(*shape_nchw, requires_grad=True, device=where)
  wait = torch.cuda.synchronize if on_gpu else (lambda: None)

  def fwd():
    peer.eval()
    with torch.no_grad():
      model(x)
    wait()

  def fwd_bwd():
    peer.train()
    peer.zero_grad(set_to_none=True)
    x.grad = None
    model(x).sum().backward()
    wait()

  out = {"device": where, "tf32": on_gpu}
  saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
           torch.backends.cudnn.benchmark)
  if on_gpu:
    gpu_settings()
  try:
    for key, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
      t = time.perf_counter()
      fn()  # compiles under torch.compile
      out[f"{key}_first_s"] = time.perf_counter() - t
      for _ in range(warmup):
        fn()
      times = []
      for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
      out[f"{key}_ms"] = 1e3 * statistics.median(times)
  finally:
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.benchmark) = saved
  return out


def gpu_settings() -> None:
  """PyTorch on a GPU as XLA computes there: float32 products in TensorFloat-32, each conv's
  algorithm chosen by timing (XLA's autotuning). The H200 figures of docs/benchmarks.md were
  taken before the second (cuDNN's heuristics chose)."""
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
  torch.backends.cudnn.benchmark = True
