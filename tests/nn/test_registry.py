"""The model registry: names, defaults, errors, the NumPy-filled model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bottleneck.measure import numerics
from bottleneck.nn import blocks, registry
from bottleneck.util.errors import ConfigError


def test_every_model_has_its_defaults():
  for name, spec in registry.MODELS.items():
    model = registry.abstract_model(name, reduce=registry.published_reduce(name))
    assert (model.image_size, model.num_classes) == (spec.image_size, spec.num_classes)
    assert model.name == name


def test_unknown_name_lists_the_known_and_the_closest():
  with pytest.raises(ConfigError) as e:
    registry.create_model("inception_v4", reduce=True)
  msg = str(e.value)
  assert "'inception_v4'" in msg and "googlenet_bn" in msg
  assert "Did you mean 'inception_v3'?" in msg


def test_random_model_is_deterministic_and_runs():
  a = registry.random_model("inception_small", reduce=True, width=0.25, seed=3)
  b = registry.random_model("inception_small", reduce=True, width=0.25, seed=3)
  for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b))):
    assert bool(jnp.all(x == y))
  a.eval()
  out = nnx.jit(lambda m, x: m(x))(a, jnp.ones((1, 28, 28, 3)))
  assert out.shape == (1, 10) and float(jnp.abs(out).sum()) > 0


def test_create_model_initialises_as_the_layers_do_eagerly():
  """create_model compiles the initialisers as one unoptimised program; the values must be
  those of building the network eagerly, layer by layer, from the same seed, to within a
  rounding (XLA's optimisations change how some products round), and the same every time."""
  kwargs = dict(in_channels=1, width=0.5, hidden=16, batch_norm=True)
  # The streams' counts are static while the initialisers are traced: each draw must still
  # get its own count, and the caller's streams advance as far as the eager build's.
  rngs, eager_rngs = nnx.Rngs(params=4), nnx.Rngs(params=4)
  jitted = registry.create_model("flatten_head_cnn", reduce=True, rngs=rngs, **kwargs)
  style = blocks.ConvStyle(batch_norm=True)
  eager = registry.MODELS["flatten_head_cnn"].build(num_classes=10, image_size=8, in_channels=1,
                                                    width=0.5, hidden=16,
                                                    reduction=blocks.Reduction(enabled=True),
                                                    style=style, rngs=eager_rngs)
  assert int(rngs.params.count[...]) == int(eager_rngs.params.count[...]) > 1
  a, b = nnx.state(jitted), nnx.state(eager)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype
    if jnp.issubdtype(x.dtype, jnp.floating):
      # Elementwise draws (no sums): XLA's optimisations move each by a few rounding units
      # of the values it is computed from (the array's scale), FACTOR allows 16.
      tol = numerics.FACTOR * numerics.U
      np.testing.assert_allclose(x, y, rtol=tol, atol=tol * float(jnp.abs(y).max()))
    else:
      assert bool(jnp.all(x == y))
  again = registry.create_model("flatten_head_cnn", reduce=True, rngs=nnx.Rngs(params=4), **kwargs)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(nnx.state(again))):
    assert bool(jnp.all(x == y))
  # A second model of the same kind reuses the compiled initialisers, with its own seed.
  other = registry.create_model("flatten_head_cnn", reduce=True, rngs=nnx.Rngs(params=5), **kwargs)
  assert not bool(
      jnp.all(other.trunk.layers[0].conv.kernel[...] == jitted.trunk.layers[0].conv.kernel[...]))


def test_unknown_model_argument_is_a_clear_error():
  with pytest.raises(
      ConfigError, match=r"unknown argument of model 'inception_small' 'widht'.*"
      r"Did you mean 'width'\?"):
    registry.abstract_model("inception_small", reduce=True, widht=0.5)


def test_batch_norm_momentum_is_a_model_argument():
  """A short training needs a smaller batch-norm momentum (configs/ablation_placement.py);
  it reaches every batch norm, and an impossible one is one clear error."""
  model = registry.abstract_model("googlenet", reduce=True, image_size=32, num_classes=10,
                                  batch_norm=True, use_bias=False, lrn=False, width=0.125,
                                  bn_momentum=0.9)
  norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.BatchNorm)]
  assert len(norms) > 50 and {n.momentum for n in norms} == {0.9}
  with pytest.raises(ConfigError, match=r"bn_momentum=1.5 is invalid; it must be a number in "
                     r"\[0, 1\)"):
    registry.abstract_model("inception_small", reduce=True, bn_momentum=1.5)


@pytest.mark.parametrize("name",
                         [n for n, s in registry.MODELS.items() if "reduction_places" in s.routed])
def test_declared_reduction_places_are_those_the_blocks_have(name, monkeypatch):
  """ModelSpec.places, which refuses the others, is the set of places the model's blocks ask
  the Reduction about while the model is built (abstractly: nothing is computed)."""
  asked = set()
  at = blocks.Reduction.at
  monkeypatch.setattr(blocks.Reduction, "at",
                      lambda self, place: asked.add(place) or at(self, place))
  registry.abstract_model(name, reduce=True, image_size=registry.MODELS[name].image_size)
  assert asked == set(registry.MODELS[name].places)


@pytest.mark.parametrize("kwargs,named", [({"reduction_places": "5x5"}, "5x5"),
                                          ({"reduction_places": "3x3,7x7"}, "7x7"),
                                          ({"reduction_ratios": "5x5=0.5"}, "5x5")])
def test_a_place_the_model_does_not_have_is_refused(kwargs, named):
  """These built the naive inception_small (or an unchanged one) and labelled it reduced."""
  key = next(iter(kwargs))
  with pytest.raises(
      ConfigError, match=rf"{key}=.* names {named}, where model "
      r"'inception_small' has no reduction; its places: 3x3"):
    registry.abstract_model("inception_small", reduce=True, **kwargs)
  registry.abstract_model("inception_small", reduce=True, reduction_places="3x3")


def test_fast_compile_keeps_only_the_options_this_xla_knows(monkeypatch):
  """An option this XLA lacks would fail every model's initialisers (jax 0.11 dropped one
  that jax 0.10 has); it is left out instead."""
  known = dict(registry.FAST_COMPILE)
  monkeypatch.setattr(registry, "FAST_COMPILE", {**known, "xla_no_such_option": True})
  registry.fast_compile_options.cache_clear()
  try:
    kept = registry.fast_compile_options()
    assert "xla_no_such_option" not in kept and kept.items() <= known.items()
    assert kept["xla_backend_optimization_level"] == 0  # XLA's generic option stays
    if jax.__version__.startswith("0.10."):  # the installed jax knows both
      assert kept == known
  finally:
    registry.fast_compile_options.cache_clear()
