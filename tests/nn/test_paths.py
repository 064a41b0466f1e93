"""Every fast path equals XLA's own op, values and gradients, ties included."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.nn import blocks, paths, registry
from bottleneck.nn.layers import ConvStyle, ConvUnit, MaxPool
from bottleneck.nn.paths import Paths
from bottleneck.util.errors import ConfigError
from tests.numerics import assert_rounding_close, in_float64

# The CPU's "auto" paths and XLA's CPU libraries: conftest.py pins the tests to the CPU, and a
# run on a GPU (JAX_PLATFORMS=cuda, .ci/gpu_check) skips these.
cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu",
                              reason="the CPU's paths and XLA's CPU libraries")


def _xla_pool(x, window, stride, padding):
  return nnx.max_pool(x, window, stride, padding)


def _path(unit, x):
  """The formulation `unit`'s conv takes on input `x` (`Paths.conv_path`)."""
  return unit.paths.conv_path(x.shape[1:3], unit.kernel_size, unit.strides, unit.padding)


@nnx.jit  # one program, not one per op: op by op, the float64 reference compiled dozens
def _unit_value_and_grads(unit, x):
  """sum(sin(unit(x))) and its gradients for the unit's parameters and for x."""
  return nnx.value_and_grad(lambda m, x: jnp.sum(jnp.sin(m(x))), argnums=(0, 1))(unit, x)


def _assert_same_unit(units, x):
  """units[1]'s value and gradients are as accurate as units[0]'s (XLA's path), both against
  the float64 computation of XLA's path (tests/numerics.py)."""
  got, ref = (_unit_value_and_grads(u, x) for u in units[::-1])
  _assert_same_value_and_grads(got, ref, in_float64(_unit_value_and_grads, units[0], x),
                               repr(units[1].paths))


def _assert_same_value_and_grads(got, ref, exact, what):
  """The value and the gradients, each on its own scale (`assert_rounding_close`)."""
  for i in (0, 1):
    assert_rounding_close(got[i], ref[i], exact[i], what)


def _value_and_grad(pool, x):
  """The pool's output and the gradient of a weighted sum of it (weights all distinct)."""

  def loss(x):
    y = pool(x)
    return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=y.dtype).reshape(y.shape)))

  return pool(x), jax.grad(loss)(x)


@pytest.mark.parametrize("shape,window,stride,padding", [
    ((2, 9, 9, 3), (3, 3), (1, 1), "SAME"),
    ((2, 10, 7, 4), (3, 3), (2, 2), "SAME"),
    ((2, 11, 11, 3), (3, 3), (2, 2), "VALID"),
    ((1, 8, 8, 2), (2, 2), (2, 2), "VALID"),
    ((2, 7, 9, 3), (1, 3), (1, 2), "SAME"),
    ((1, 12, 12, 2), (5, 3), (3, 2), "SAME"),
])
@pytest.mark.parametrize("data", ["normal", "relu", "zeros"])
def test_argmax_max_pool_equals_xla(shape, window, stride, padding, data):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  # ReLU'd data (many zeros) and all-zero data put ties in most windows: the gradient must go
  # to the same tap as XLA's select_and_scatter gives it, not be shared or doubled.
  x = jnp.asarray({"normal": x, "relu": np.maximum(x, 0), "zeros": np.zeros_like(x)}[data])
  ours = lambda x: paths.max_pool_argmax(x, window, stride, padding)
  y, g = _value_and_grad(jax.jit(ours), x)
  xla = lambda x: _value_and_grad(lambda x: _xla_pool(x, window, stride, padding), x)
  y_ref, g_ref = xla(x)
  np.testing.assert_array_equal(y, y_ref)  # a max selects one of its inputs: no rounding
  # A gradient shared between tied taps, or doubled, is off by O(1), not by a rounding.
  assert_rounding_close(g, g_ref, in_float64(xla, x)[1], "the pool's gradient")


@pytest.mark.parametrize("path", ["xla", "argmax"])
def test_every_max_pool_path_differentiates_jitted_and_rematerialized(path):
  """Training jits the gradient and the memory accounting rematerializes it; a pool whose
  init value is traced stops being differentiable there (XLA's path once was)."""
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 9, 9, 3)), jnp.float32)
  loss = lambda pool: lambda x: jnp.sum(jnp.sin(pool(x, (3, 3), (2, 2), "SAME")))
  expected = jax.grad(loss(_xla_pool))(x)
  exact = in_float64(jax.grad(loss(_xla_pool)), x)
  ours = loss(Paths(max_pool=path).max_pooling)
  for grad in (jax.jit(jax.grad(ours)), jax.grad(jax.checkpoint(ours))):
    assert_rounding_close(grad(x), expected, exact, path)


def test_argmax_max_pool_bfloat16():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 3)), jnp.bfloat16)
  y, g = _value_and_grad(lambda x: paths.max_pool_argmax(x, (3, 3), (2, 2), "SAME"), x)
  xla = lambda x: _value_and_grad(lambda x: _xla_pool(x, (3, 3), (2, 2), "SAME"), x)
  y_ref, g_ref = xla(x)
  assert y.dtype == g.dtype == jnp.bfloat16
  np.testing.assert_array_equal(y, y_ref)
  assert_rounding_close(g, g_ref, in_float64(xla, x)[1], "bfloat16 gradient")


@pytest.mark.parametrize("kernel,strides,padding", [((7, 1), 1, "SAME"), ((3, 1), (2, 1), "VALID"),
                                                    ((5, 1), 2, "SAME")])
def test_transposed_kx1_conv_equals_xla(kernel, strides, padding):
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 11, 9, 6)), jnp.float32)
  units = [
      ConvUnit(6, 5, kernel, style=ConvStyle(paths=Paths(conv_kx1=path, conv_strided="xla")),
               strides=strides, padding=padding, rngs=nnx.Rngs(0)) for path in ("xla", "transposed")
  ]
  assert [_path(u, x) for u in units] == ["xla", "transposed"]
  _assert_same_unit(units, x)
  assert _path(
      ConvUnit(6, 5, (1, 7), style=ConvStyle(paths=Paths(conv_kx1="transposed")), rngs=nnx.Rngs(0)),
      x) == "xla"


@pytest.mark.parametrize("kernel,strides,padding", [(3, 2, "VALID"), (3, 2, "SAME"), (7, 2, "SAME"),
                                                    ((1, 3), (1, 2), "SAME"), (1, 2, "VALID")])
def test_im2col_strided_conv_equals_xla(kernel, strides, padding):
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 12, 11, 5)), jnp.float32)
  units = [
      ConvUnit(5, 4, kernel, style=ConvStyle(paths=Paths(conv_strided=path), batch_norm=True),
               strides=strides, padding=padding, rngs=nnx.Rngs(0)) for path in ("xla", "im2col")
  ]
  assert _path(units[0], x) != "im2col" and _path(units[1], x) == "im2col"
  _assert_same_unit(units, x)
  stride_1 = ConvUnit(5, 4, 3, style=ConvStyle(paths=Paths(conv_strided="im2col")),
                      rngs=nnx.Rngs(0))
  assert _path(stride_1, x) == "xla"


@pytest.mark.parametrize("strides,padding", [(1, 1), (2, 1), (2, "SAME"), (1, "VALID"),
                                             (2, (0, 2))])
def test_depthwise_taps_equal_xla(strides, padding):
  """MobileNetV2's depthwise conv as one shifted multiply per tap: value and gradients as
  accurate as XLA's grouped conv, batch norm and ReLU6 after it."""
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 9, 8, 6)), jnp.float32)
  units = [
      ConvUnit(6, 6, 3, groups=6, activation="relu6", strides=strides, padding=padding,
               style=ConvStyle(paths=Paths(conv_depthwise=path), batch_norm=True), rngs=nnx.Rngs(0))
      for path in ("xla", "taps")
  ]
  _assert_same_unit(units, x)


def test_parse_paths():
  assert Paths.parse("auto") == Paths() and Paths().as_dict() == dict.fromkeys(paths.KINDS, "auto")
  assert Paths.parse("xla, max_pool=argmax").as_dict() == {
      "conv_1x1": "xla", "conv_kx1": "xla", "conv_strided": "xla", "max_pool": "argmax",
      "conv_taps": "xla", "conv_library": "xla", "conv_depthwise": "xla", "norm": "xla"
  }
  with pytest.raises(ConfigError, match=r"unknown path kind 'maxpool'.*Did you mean 'max_pool'"):
    Paths.parse("xla,maxpool=argmax")
  with pytest.raises(ConfigError, match=r"unknown conv_1x1 'mm'"):
    Paths.parse("auto,conv_1x1=mm")
  with pytest.raises(ConfigError, match=r"'max_pool' is not kind=choice"):
    Paths.parse("xla,max_pool")
  with pytest.raises(ConfigError, match=r"unknown path base 'fast'"):
    Paths.parse("fast")


@cpu_only
def test_resolve():
  assert paths.resolve("conv_1x1", "auto") == "matmul"
  assert paths.resolve("max_pool", "auto") == "argmax"
  assert paths.resolve("conv_kx1", "auto") == "transposed"
  assert paths.resolve("conv_strided", "auto") == "xla"
  assert paths.resolve("conv_library", "auto") == "eigen"
  assert paths.resolve("conv_taps", "auto") == "live"
  assert paths.resolve("conv_depthwise", "auto") == "taps"
  assert paths.resolve("norm", "auto") == "xla"
  assert paths.resolve("max_pool", "xla") == "xla"
  assert Paths().resolve() == Paths(conv_1x1="matmul", conv_kx1="transposed", conv_strided="xla",
                                    max_pool="argmax", conv_taps="live", conv_library="eigen",
                                    conv_depthwise="taps", norm="xla")
  assert MaxPool(3, 1).paths.max_pool == "argmax"
  assert MaxPool(3, 1, paths=Paths(max_pool="xla")).paths.max_pool == "xla"
  with pytest.raises(
      ConfigError, match=r"unknown max_pool 'argmin'.*valid: auto, xla, argmax"
      r".*Did you mean 'argmax'"):
    Paths(max_pool="argmin")
  # One name for the concept: a model takes its paths as one value, not as model arguments.
  with pytest.raises(
      ConfigError, match=r"'conv_1x1' is a path, not an argument of model "
      r"'inception_small'.*config.paths.conv_1x1"):
    registry.create_model("inception_small", reduce=True, conv_1x1="matmul")


# v3 B's factorized 7x1s and 1x7s: test_transposed_kx1_conv_equals_xla covers their path.
@pytest.mark.parametrize(
    "block", ["googlenet_3a", pytest.param("v3_block_b", marks=pytest.mark.slow)])
def test_every_path_computes_the_same_block(block):
  """Narrow (3a) and Inception-v3 B blocks under every combination of paths."""
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 9, 9, 48)), jnp.float32)
  outs = {}
  # Every kind a module computes (conv_library is the jit's); all taps are live at 9x9. Each
  # kind's path alone, and all of them together: they act on disjoint ops (1x1 convs, kx1
  # convs, strided convs, max pools, batch norms), so the other mixes add time, not coverage.
  kinds = ("conv_1x1", "conv_kx1", "conv_strided", "max_pool", "norm")
  xla = ("xla",) * len(kinds)
  fast = tuple(paths.CHOICES[k][2] for k in kinds)
  for choice in [xla, fast] + [xla[:i] + (fast[i],) + xla[i + 1:] for i in range(len(kinds))]:
    style = blocks.ConvStyle(batch_norm=block != "googlenet_3a",
                             paths=Paths(**dict(zip(kinds, choice))))
    if block == "googlenet_3a":
      module = blocks.GoogLeNetInception(48, 16, 24, 32, 4, 8, 8, style=style, rngs=nnx.Rngs(0))
    else:
      module = blocks.InceptionV3B(48, 8, style=style, rngs=nnx.Rngs(0))
    outs[choice] = _unit_value_and_grads(module, x)
    if choice == xla:
      exact = in_float64(_unit_value_and_grads, module, x)
  for key, out in outs.items():
    _assert_same_value_and_grads(out, outs[xla], exact, str(key))


@cpu_only
@pytest.mark.parametrize("kernel,strides,padding,features", [(3, 1, "VALID", (6, 5)),
                                                             (3, 1, "SAME", (6, 5)),
                                                             (3, 2, "VALID", (6, 5)),
                                                             (5, 1, "SAME", (4, 8)),
                                                             ((7, 1), 1, "SAME", (6, 5)),
                                                             ((1, 7), 1, "SAME", (6, 5)),
                                                             (1, 1, "SAME", (6, 5))])
def test_conv_library_gives_xla_numbers(kernel, strides, padding, features):
  """The same conv, values and both gradients, compiled for YNNPACK (XLA's CPU default) and
  for XLA's own convolution."""
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 12, 11, features[0])), jnp.float32)
  w = jnp.asarray(
      np.random.default_rng(6).normal(size=(*np.broadcast_to(kernel, 2), *features)), jnp.float32)
  strides = tuple(np.broadcast_to(strides, 2).tolist())

  def loss(x, w):
    y = jax.lax.conv_general_dilated(x, w, strides, padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.sin(y))

  step = lambda options: jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), compiler_options=options)
  default, eigen = step(paths.compiler_options("xla")), step(paths.compiler_options("eigen"))
  _assert_same_value_and_grads(eigen(x, w), default(x, w),
                               in_float64(jax.value_and_grad(loss, argnums=(0, 1)), x, w), "eigen")


@pytest.mark.parametrize("size,kernel", [((1, 1), 3), ((1, 1), (1, 3)), ((3, 3), (7, 1)),
                                         ((3, 3), (1, 7)), ((2, 3), 5), ((1, 4), 3), ((2, 2), 4),
                                         ((3, 3), 3)])
def test_live_taps_conv_equals_xla(size, kernel):
  """A SAME conv on a map smaller than its kernel, with only its live taps: XLA's values and
  gradients (the dropped taps' kernel gradients are exactly zero)."""
  x = jnp.asarray(np.random.default_rng(7).normal(size=(2, *size, 6)), jnp.float32)
  units = [
      ConvUnit(6, 5, kernel, style=ConvStyle(paths=Paths(conv_taps=path), batch_norm=True),
               rngs=nnx.Rngs(0)) for path in ("xla", "live")
  ]
  k = np.broadcast_to(kernel, 2)
  assert _path(units[0], x) != "live"
  assert (_path(units[1], x) == "live") == any(size[a] < k[a] for a in (0, 1))
  _assert_same_unit(units, x)
  grad_kernel = _unit_value_and_grads(units[1], x)[1][0]["conv"]["kernel"][...]
  trimmed = paths.conv_live_taps(x, units[1].conv.kernel[...])
  assert (trimmed is None) == all(size[a] >= k[a] for a in (0, 1))
  live = [paths.live_taps(size[a], int(k[a])) for a in (0, 1)]
  dead = np.ones(grad_kernel.shape[:2], bool)
  dead[live[0][0]:live[0][1], live[1][0]:live[1][1]] = False
  assert np.all(np.asarray(grad_kernel)[dead] == 0)
  strided = ConvUnit(6, 5, 3, style=ConvStyle(paths=Paths(conv_taps="live")), strides=2,
                     rngs=nnx.Rngs(0))
  assert _path(strided, x) != "live"


def _ynn_op_kinds(compiled_text: str) -> set[str]:
  """The kinds of op inside the computations that a compiled module hands to YNNPACK."""
  computations, name = {}, None
  for line in compiled_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%([\w.\-]+) .*\{$", line)
    if header:
      name = header.group(1)
      computations[name] = []
    elif name:
      computations[name].append(line)
  called = {
      m.group(1) for line in compiled_text.splitlines() if "__ynn_fusion" in line
      for m in [re.search(r"calls=%([\w.\-]+)", line)] if m
  }
  return {
      op.group(1)
      for c in called
      for line in computations.get(c, [])
      for op in [re.search(r"= \S+ ([a-z\-]+)\(", line)]
      if op and op.group(1) not in ("parameter", "constant", "bitcast")
  }


@cpu_only
def test_eigen_moves_only_the_convolutions_out_of_ynnpack():
  """"eigen" must be XLA's default list less the convolutions: matmuls and reductions (batch
  norm's statistics) stay where XLA puts them. If a jax release changes its default list, this
  fails and paths._LIBRARY_OPTIONS needs the new list."""

  def conv_bn_dense(x, w, d):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jax.nn.relu((y - jnp.mean(y, (0, 1, 2))) * 2.0)
    return jnp.dot(y.reshape(-1, y.shape[-1]), d)

  args = (jnp.ones((32, 28, 28, 64)), jnp.ones((3, 3, 64, 32)), jnp.ones((32, 16)))
  kinds = {
      lib: _ynn_op_kinds(
          jax.jit(conv_bn_dense,
                  compiler_options=paths.compiler_options(lib)).lower(*args).compile().as_text()
      ) for lib in ("xla", "eigen")
  }
  if "convolution" not in kinds["xla"]:
    pytest.skip(f"jax {jax.__version__} does not hand convolutions to YNNPACK")
  assert {"dot", "reduce"} <= kinds["eigen"] == kinds["xla"] - {"convolution"}, kinds


@cpu_only
def test_compiler_options():
  assert paths.compiler_options("xla") is None
  assert paths.compiler_options("auto") == paths.compiler_options("eigen") == {
      "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"  # noqa: E501
  }
  with pytest.raises(ConfigError, match=r"unknown conv_library 'egien'.*Did you mean 'eigen'"):
    paths.compiler_options("egien", "config")
  assert Paths(conv_library="xla").compiler_options() is None
  assert Paths().compiler_options() == paths.compiler_options("eigen")
  # The library is a field of the model's paths, not a model argument.
  with pytest.raises(
      ConfigError, match="'conv_library' is a path, not an argument of model "
      "'inception_small'"):
    registry.create_model("inception_small", reduce=True, conv_library="eigen")


def test_conv_library_elsewhere(monkeypatch):
  """Another backend gets XLA's default, and a CPU choice named there is refused; a jax whose
  XLA lacks the option falls back to its default under "auto" and refuses "eigen"."""
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert paths.resolve("conv_library", "auto") == "xla"
  # On a GPU "auto" takes the one path measured faster there (the 1x1 matmul), XLA's op else.
  assert Paths().resolve() == Paths.parse("xla,conv_1x1=matmul")
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")  # not measured: XLA's every op
  assert Paths().resolve() == Paths.parse("xla")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert paths.compiler_options("auto") is None
  with pytest.raises(ConfigError, match=r"conv_library='eigen'.*backend is 'gpu'.*'auto', 'xla'"):
    paths.compiler_options("eigen")
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  monkeypatch.setattr(paths, "_library_option_works", lambda choice: False)
  assert paths.resolve("conv_library", "auto") == "xla"
  with pytest.raises(ConfigError, match=r"needs XLA's CPU option .* does not accept"):
    paths.resolve("conv_library", "eigen", "config")


@pytest.mark.parametrize("use_bias,activation,use_scale", [(True, True, True), (False, False, True),
                                                           (False, "relu6", False)])
def test_fused_batch_norm_equals_xla(use_bias, activation, use_scale):
  """A conv unit's train-mode batch norm (and activation) as one fused op: XLA's values,
  gradients (the conv's bias gets 0 either way, to rounding) and running statistics; in eval
  mode both take `nnx.BatchNorm`'s own path."""
  x = jnp.asarray(np.random.default_rng(3).normal(1.0, 2.0, size=(4, 6, 6, 5)), jnp.float32)
  units = [
      ConvUnit(
          5, 7, 3, activation=activation, rngs=nnx.Rngs(0), name="u",
          style=ConvStyle(batch_norm=True, use_bias=use_bias, bn_use_scale=use_scale,
                          bn_momentum=0.9, paths=Paths(norm=choice))) for choice in ("xla", "fused")
  ]
  assert [u.paths.norm for u in units] == ["xla", "fused"]
  for u in units:  # parameters away from their initial values, so every term counts
    nnx.update(
        u,
        jax.tree.map(
            lambda a: a + jnp.asarray(
                np.random.default_rng(a.size).normal(0, 0.3, a.shape), a.dtype),
            nnx.state(u, nnx.Param)))
  _assert_same_unit(units, x)
  xla, fused = (nnx.state(u, nnx.BatchStat) for u in units)
  for a, b in zip(jax.tree.leaves(xla), jax.tree.leaves(fused), strict=True):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  assert not np.allclose(jax.tree.leaves(xla)[0], 0)  # the running mean did move
  for u in units:  # the same statistics to rounding, so the same eval outputs to rounding
    u.eval()
  np.testing.assert_allclose(units[1](x), units[0](x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("relu", [True, False])
def test_fused_batch_norm_statistics_differentiate(relu):
  """`batch_norm_fused`'s three outputs against the same formulas left to JAX's autodiff, with
  a loss that reads all of them (the statistics too), in float64."""

  def reference(y, scale, offset):
    mean = jnp.mean(y, (0, 1, 2))
    var = jnp.maximum(jnp.mean(y * y, (0, 1, 2)) - mean * mean, 0.0)
    out = (y - mean) * jax.lax.rsqrt(var + 1e-3) * scale + offset
    return (jnp.maximum(out, 0.0) if relu else out), mean, var

  def loss(fn, y, scale, offset):
    out, mean, var = fn(y, scale, offset)
    return jnp.sum(jnp.sin(out)) + jnp.sum(jnp.cos(mean)) + jnp.sum(var * jnp.arange(3.0))

  rng = np.random.default_rng(4)
  with jax.enable_x64():
    args = [jnp.asarray(rng.normal(0.5, 2.0, size), jnp.float64) for size in ((3, 4, 5, 3), 3, 3)]
    fused = lambda *a: paths.batch_norm_fused(*a, 1e-3, relu)
    for got, want in zip(
        jax.value_and_grad(lambda *a: loss(fused, *a), (0, 1, 2))(*args),
        jax.value_and_grad(lambda *a: loss(reference, *a), (0, 1, 2))(*args)):
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
