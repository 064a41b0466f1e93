"""How far two float32 computations of the same function may differ by rounding alone.

Two implementations of one network (ours and its PyTorch twin; XLA's conv and a fast path; the
kernels of an AMD and an Intel CPU) sum in other orders, so their float32 results differ. A
fixed tolerance is wrong in both directions; this module estimates it instead. A float32 sum
of n products in blocked or pairwise order, as CPU kernels sum, carries a relative error of
about sqrt(n) * U, U = 2^-24 (Higham and Mary, "A new approach to probabilistic rounding error
analysis", SIAM J. Sci. Comput. 2019; the worst case is n * U), and the independent errors of
`depth` layers in a row add in quadrature. `FACTOR` covers the constant of that estimate and
the cancellation in a sum (its terms can be larger than its result). A wrong layer (padding,
a missing bias, a transposed kernel) is off by O(1), far above it.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx

U = 2.0**-24  # float32's unit roundoff (half the machine epsilon)
FACTOR = 16.0
# Layers with parameters on the longest path, as the papers count them: "22 layers deep"
# (Szegedy et al. 2014), "42 layers deep" (Szegedy et al. 2015), the ResNets' names, and
# SqueezeNet's conv1, 8 fire modules of two convs in a row, and its classifier conv;
# MobileNetV2's conv1, 2 + 16 x 3 convs in its blocks, its last conv and classifier.
DEPTH = {
    "googlenet": 22, "googlenet_bn": 22, "inception_v3": 42, "resnet18": 18, "resnet34": 34,
    "resnet50": 50, "squeezenet1_0": 18, "squeezenet1_1": 18, "mobilenet_v2": 53, "nin": 9
}


def kernels(module) -> list:
  """The conv (HWIO) and Dense (in, out) kernels of `module`."""
  return [v for v in jax.tree.leaves(nnx.state(module, nnx.Param)) if np.ndim(v) >= 2]


def longest_sum(module) -> int:
  """The number of products in the longest sum of `module`'s convs and Dense layers: kh * kw *
  c_in of a conv kernel, c_in of a Dense one."""
  return max(math.prod(np.shape(k)[:-1]) for k in kernels(module))


def float32_rtol(module, depth: int | None = None) -> float:
  """The tolerance of a norm-wise relative comparison, max|a - b| / max|b|, of two float32
  implementations of `module` with `depth` layers in a row (default: every layer with a
  kernel, an upper bound): FACTOR times sqrt(depth) * sqrt(n) * U for each implementation, n
  the `longest_sum`."""
  depth = len(kernels(module)) if depth is None else depth
  return FACTOR * 2 * math.sqrt(depth) * math.sqrt(longest_sum(module)) * U
