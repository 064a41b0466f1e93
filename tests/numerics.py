"""Float tolerances from an error estimate, so that they hold on every CPU (AMD and Intel,
AVX2 and AVX-512, oneDNN, Eigen and YNNPACK kernels, any thread count).

Two float32 computations of the same function differ by rounding alone, and rounding depends
on the order in which a kernel sums: CPUs with other vector widths block their sums
differently. A fixed tolerance such as `atol=1e-5` is wrong in both directions: too loose for
small values, too tight where the function amplifies rounding. Batch norm over two values, for
instance, divides by their variance plus epsilon, and its gradient by the square of that: the
test of the live-taps conv at 1x1 differed from XLA's by 1.28e-5 on an AMD EPYC (1e-5 allowed).

So the suite measures the estimate instead of guessing it. `in_float64` computes the function
again in float64 (exact to about 1e-16, far below float32's rounding), and the float32
reference's distance from it is the rounding error that this function suffers at these values
in float32, its conditioning included. `assert_rounding_close` then asks the implementation
under test to be as accurate as the reference, within `FACTOR`:

    max |actual - exact| <= FACTOR * (max |reference - exact| + U * max |exact|)

per array, the maxima over the array (a norm-wise test: a near-zero entry with a large relative
error does not fail it; an error large against the array's scale does). The second term is
float32's own rounding at the scale of the whole result (every array of the pytree), so that a
reference that happens to be exact does not demand exactness, and a gradient that is zero in
theory (a conv's bias under batch norm: rounding noise) is judged on the other gradients'
scale. Two kernels' rounding errors differ by their summation order, not their
size. In the suite the largest ratio of an error to its bound was 0.16 on an Intel Xeon
(`BOTTLENECK_ROUNDING_LOG=FILE` appends each comparison's to FILE; docs/testing.md).

Where no float64 computation is at hand (PyTorch against JAX on whole networks, where a float64
build would double the compile time), `network_rtol` gives the a-priori estimate of
`bottleneck.measure.numerics.float32_rtol`, which the PyTorch peer's own check uses too.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bottleneck.measure import numerics

U, FACTOR, DEPTH = numerics.U, numerics.FACTOR, numerics.DEPTH
LOG = "BOTTLENECK_ROUNDING_LOG"  # a file to append each comparison's worst ratio to


def _to64(a):
  if isinstance(a, nnx.Module):  # a copy whose parameters are float64 and that computes in it
    a = nnx.clone(a)
    for _, m in nnx.iter_modules(a):
      if getattr(m, "dtype", None) is not None and jnp.issubdtype(m.dtype, jnp.floating):
        m.dtype = jnp.float64
    graphdef, state = nnx.split(a)
    return nnx.merge(graphdef, jax.tree.map(_to64, state))
  if isinstance(a, (jax.Array, np.ndarray)) and jnp.issubdtype(a.dtype, jnp.floating):
    return jnp.asarray(np.asarray(a, np.float64))
  return a


def in_float64(fn, *args):
  """`fn(*args)` in float64: float arrays and the state of nnx modules among `args` are made
  float64 (modules compute in their inputs' dtype). Jitted: one program, not one per op.
  Returns the output as NumPy arrays."""
  with jax.enable_x64(True):
    out = nnx.jit(fn)(*[_to64(a) for a in args])
    return jax.tree.map(lambda v: np.asarray(v, np.float64), out)


def _unit(dtype) -> float:
  """The unit roundoff of a result's dtype (float32's for float32 and wider)."""
  return U if np.dtype(dtype).itemsize >= 4 else float(jnp.finfo(dtype).eps) / 2


def rounding_ratios(actual, reference, exact) -> list[float]:
  """For each array: max|actual - exact| over the bound that `assert_rounding_close` allows
  (<= 1 passes)."""
  out = []
  leaves = [jax.tree.leaves(t) for t in (actual, reference, exact)]
  assert len({len(v) for v in leaves}) == 1, [len(v) for v in leaves]
  scale = max(float(np.max(np.abs(e), initial=0.0)) for e in leaves[2])
  for a, r, e in zip(*leaves):
    unit = _unit(np.asarray(r).dtype)
    a, r, e = (np.asarray(v, np.float64) for v in (a, r, e))
    assert a.shape == r.shape == e.shape, (a.shape, r.shape, e.shape)
    bound = FACTOR * (float(np.max(np.abs(r - e), initial=0.0)) + unit * scale)
    err = float(np.max(np.abs(a - e), initial=0.0))
    out.append(0.0 if err == 0 else err / bound if bound > 0 else math.inf)
  return out


def assert_rounding_close(actual, reference, exact, what: str = "") -> None:
  """`actual` (float32, the implementation under test) is as accurate as `reference` (float32,
  XLA's own op) within FACTOR, both measured against `exact` (`in_float64`); pytrees of the
  same structure."""
  ratios = rounding_ratios(actual, reference, exact)
  worst = max(ratios, default=0.0)
  if os.environ.get(LOG):  # the margins on this machine, for docs/testing.md
    with open(os.environ[LOG], "a") as f:
      f.write(f"{worst:.4f}\t{what}\n")
  assert worst <= 1.0, (
      f"{what}: an error {worst:.3g} times the bound (FACTOR={FACTOR:g} times the float32 "
      f"reference's own error); per array: {[f'{r:.3g}' for r in ratios]}")


def network_rtol(module, depth: int) -> float:
  """`bottleneck.measure.numerics.float32_rtol`: the tolerance of a norm-wise relative
  comparison of two float32 implementations of `module`, `depth` layers in a row."""
  return numerics.float32_rtol(module, depth)


def assert_matches(actual, reference_fn, *args, what: str = "") -> None:
  """`actual` equals `reference_fn(*args)` to within rounding: `assert_rounding_close` against
  the reference computed in float32 and in float64."""
  assert_rounding_close(actual, reference_fn(*args), in_float64(reference_fn, *args), what)


def score_maps(model, net, x, name: str):
  """`net`'s score map of `x` (batch, H', W', classes) and `model`'s logits on the input's
  top-left training-size crop, after checking that the map's first location equals those
  logits within the float32 estimate of a network of `DEPTH[name]` layers."""
  forward = nnx.jit(lambda m, v: m(v))
  s = model.image_size
  logits = forward(model, x[:, :s, :s])
  at_size = forward(net, x[:, :s, :s])[:, 0, 0]
  assert float(jnp.abs(at_size - logits).max()) <= \
      network_rtol(model, DEPTH[name]) * float(jnp.abs(logits).max())
  return forward(net, x)
