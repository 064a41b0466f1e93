"""PyTorch peers of GoogLeNet's Inception block, timed in the same run as ours.

Optional: needs `pip install -e '.[torch]'` (torch==2.13.0, a CPU build here). The block is
built from the same Table 1 widths (conv with bias -> ReLU, both variants), its parameter count
is checked equal to ours, and it is timed like ours: median of `repeats` runs after warm-up,
forward and forward+backward (gradients w.r.t. parameters and input). PyTorch runs NCHW, its
default layout.
"""

from __future__ import annotations

import statistics
import time

from bottleneck.validation import ConfigError


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConfigError("the PyTorch peer needs PyTorch: pip install -e '.[torch]'") from None
  return torch


def googlenet_block(cin, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj, *, reduce):
  """GoogLeNet's Inception module in PyTorch, reduced (Fig. 2b) or naive (Fig. 2a)."""
  torch = _torch()
  nn = torch.nn

  def conv(ci, co, k):
    return nn.Sequential(nn.Conv2d(ci, co, k, padding=k // 2), nn.ReLU())

  if reduce:
    branches = [conv(cin, n1x1, 1),
                nn.Sequential(conv(cin, n3x3_reduce, 1), conv(n3x3_reduce, n3x3, 3)),
                nn.Sequential(conv(cin, n5x5_reduce, 1), conv(n5x5_reduce, n5x5, 5)),
                nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(cin, pool_proj, 1))]
  else:
    branches = [conv(cin, n1x1, 1), conv(cin, n3x3, 3), conv(cin, n5x5, 5),
                nn.MaxPool2d(3, 1, 1)]

  class Block(nn.Module):

    def __init__(self):
      super().__init__()
      self.branches = nn.ModuleList(branches)

    def forward(self, x):
      return torch.cat([b(x) for b in self.branches], dim=1)

  return Block()


def time_block(block, batch: int, side: int, channels: int, *, compile_: bool = False,
               warmup: int = 1, repeats: int = 5) -> dict:
  """Forward and forward+backward medians (ms) of a PyTorch block, and its parameter count."""
  torch = _torch()
  torch.manual_seed(0)
  model = torch.compile(block) if compile_ else block
  x = torch.randn(batch, channels, side, side, requires_grad=True)

  def fwd():
    with torch.no_grad():
      model(x)

  def fwd_bwd():
    block.zero_grad(set_to_none=True)
    x.grad = None
    model(x).sum().backward()

  out = {"params": sum(p.numel() for p in block.parameters())}
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
  return out
