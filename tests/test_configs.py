"""Every experiment config loads, names a registered model, and shows its command."""

import glob
import importlib
import os

import pytest

from bottleneck import run_config
from bottleneck.nn import registry

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(os.path.dirname(__file__), "..", "configs", "*.py"))
    if "__init__" not in p and "benchmark" not in p)  # training configs


@pytest.mark.parametrize("name", CONFIGS)
def test_config_variants(name):
  module = importlib.import_module(f"configs.{name}")
  assert f"--config=configs/{name}.py" in module.__doc__
  for variant in ("reduced", "naive"):
    c = module.get_config(variant)
    assert c.reduce == (variant == "reduced")
    assert c.model in registry.MODELS
    run_config.validate(c)  # every field, and the model built abstractly
    probe = registry.abstract_model(c.model, reduce=c.reduce, image_size=c.image_size,
                                    **run_config.model_kwargs(c))
    assert c.image_size >= probe.min_image_size
    assert c.batch_size % 2 == 0  # splits over 2 devices
  with pytest.raises(ValueError, match="unknown variant"):
    module.get_config("other")


def test_benchmark_config_variants():
  from bottleneck import benchmark  # pylint: disable=g-import-not-at-top
  from bottleneck.nn.paths import Paths  # pylint: disable=g-import-not-at-top
  from configs import benchmark as bench_config  # pylint: disable=g-import-not-at-top
  assert "--config=configs/benchmark.py" in bench_config.__doc__
  for variant in bench_config.VARIANTS:
    c = bench_config.get_config(variant)
    for name in c.cases:
      benchmark.case(name)  # raises on an unknown case
    for spec in c.paths:
      Paths.parse(spec)  # raises on an unknown path
  with pytest.raises(ValueError, match="unknown variant"):
    bench_config.get_config("other")
