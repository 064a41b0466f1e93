"""Every experiment config loads, names a registered model, and shows its command."""

import glob
import importlib
import os

import pytest

from bottleneck.nn import registry
from bottleneck.train import run_config
from bottleneck.util import config_files

# The ablation studies: variants "", quick, cifar10, and a sweep per variant.
STUDIES = ("ablation_ratio", "ablation_placement", "iso_macs")
FAMILIES = "ablation_families"  # a sweep on the studies' data, tested on its own below
SQUEEZE = "ablation_squeezenet"  # SqueezeNet's design space: likewise
CONFIGS = sorted(
    os.path.basename(p)[:-3]
    for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.py"))
    if os.path.basename(p)[:-3] not in ("__init__", "common", "benchmark", "roofline", "study",
                                        FAMILIES, SQUEEZE, *STUDIES))


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
  from bottleneck.measure import benchmark
  from bottleneck.nn.paths import Paths
  from configs import benchmark as bench_config
  assert "--config=configs/benchmark.py" in bench_config.__doc__
  for variant in bench_config.VARIANTS:
    c = bench_config.get_config(variant)
    for name in c.cases:
      benchmark.case(name)  # raises on an unknown case
    for spec in c.paths:
      Paths.parse(spec)  # raises on an unknown path
  with pytest.raises(ValueError, match="unknown variant"):
    bench_config.get_config("other")


def test_roofline_config_variants():
  from bottleneck.measure import benchmark
  from configs import roofline as roof_config
  assert "--config=configs/roofline.py" in roof_config.__doc__
  for variant in roof_config.VARIANTS:
    c = roof_config.get_config(variant)
    for name in (*c.blocks, *c.conv_blocks):
      benchmark.case(name)  # raises on an unknown case
    for model, size in c.memory_models:
      assert model in registry.MODELS and size >= 8, (model, size)
  with pytest.raises(ValueError, match="unknown variant"):
    roof_config.get_config("other")


@pytest.mark.parametrize("name", STUDIES)
def test_study_sweeps(name):
  """Every variant's sweep expands (its overrides name fields), its first and last points are
  valid configs, :quick trains fewer epochs in all, naive and reduced are both there."""
  from bottleneck.train import sweep
  path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{name}.py")
  module = importlib.import_module(f"configs.{name}")
  assert f"--config=configs/{name}.py" in module.__doc__
  sizes = {}
  datasets = {"cifar10": "cifar10", "cluttered": "digits_cluttered", "fashion": "fashion_mnist"}
  for arg in ("", "quick", "cifar10", "cifar10,quick", "cluttered", "fashion", "fashion,quick"):
    mod, config = config_files.load_config_file(f"{path}:{arg}" if arg else path)
    points = sweep.expand(mod, config, "/nonexistent", arg)
    sizes[arg] = sum(p.config.num_epochs for p in points)
    # :fashion,quick scores the first 2,000 test images (its runs' fixed cost); all others all.
    assert {p.config.eval_split for p in points
           } == {"test[:2000]" if arg == "fashion,quick" else "test"}
    for p in points:
      if p in (points[0], points[-1]):  # a reduced point and the naive one (validation builds
        run_config.validate(p.config)  # the model: seconds each)
      assert p.config.dataset == next((d for k, d in datasets.items() if k in arg), "digits")
  assert sizes["quick"] < sizes[""] and sizes["cifar10,quick"] < sizes["cifar10"]
  assert sizes["fashion,quick"] < sizes["fashion"]
  with pytest.raises(ValueError, match="unknown variant 'fast'"):
    module.get_config("fast")
  assert module.get_config("fashion_quick").to_dict() == module.get_config(
      "fashion,quick").to_dict()
  with pytest.raises(ValueError, match="variants cifar10 and cluttered are datasets"):
    module.get_config("cifar10,cluttered")
  full = sweep.expand(*config_files.load_config_file(path), "/nonexistent")
  assert {"naive", "reduced"} == {"reduced" if p.config.reduce else "naive" for p in full}
  assert len({p.name for p in full}) == len(full)


def test_the_families_sweep():
  """Per family: naive and with its 1x1s at the family's budget, and the paper's knob, each
  seed; on the studies' data (resized to 32x32); a point is a valid config (NiN's, the
  quickest to match: ResNet-50's match takes seconds)."""
  from bottleneck.train import sweep
  from configs import ablation_families as families
  path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{FAMILIES}.py")
  assert f"--config=configs/{FAMILIES}.py" in families.__doc__
  for arg, dataset, seeds in (("", "digits", 3), ("fashion", "fashion_mnist", 5)):
    points = sweep.expand(*config_files.load_config_file(f"{path}:{arg}" if arg else path),
                          "/nonexistent", arg)
    assert len(points) == len(families.BUDGETS) * 3 * seeds
    assert len({p.name for p in points}) == len(points)
    for model, budget in families.BUDGETS.items():
      mine = [p.config for p in points if p.config.model == model]
      assert {c.match_macs for c in mine} == {budget}
      assert {c.dataset for c in mine} == {dataset} and {c.image_size for c in mine} == {32}
      kinds = {(c.reduce, c.model_kwargs.reduction_activation) for c in mine}
      published = model != "mobilenet_v2"  # its projection is linear as published
      assert kinds == {(True, published), (False, published), (True, not published)}
      assert {c.model_kwargs.reduction_ratio for c in mine
             } == {0.5 if model == "inception_small" else None}  # it publishes no reduction width
      # Without batch norm their variants with the 1x1s did not learn: both variants get it.
      assert {(c.model_kwargs.batch_norm, c.model_kwargs.use_bias) for c in mine
             } == ({(True, False)} if model in families.NO_BATCH_NORM else {(None, None)})
  nin = next(p.config for p in points if p.config.model == "nin" and not p.config.reduce)
  run_config.validate(nin)
  assert abs(run_config.match_record(nin, 10)["error"]) <= 0.01


def test_the_squeezenet_design_space_sweep():
  """The squeeze ratios at the published 3x3 share, the 3x3 shares at ratio 1/2, and the
  network without its squeeze, each seed; fewer points under :quick and :fashion; the
  published point and both ends are valid configs whose cost moves with the knobs."""
  from bottleneck.measure import complexity
  from bottleneck.train import sweep
  from configs import ablation_squeezenet as squeeze
  path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{SQUEEZE}.py")
  assert f"--config=configs/{SQUEEZE}.py" in squeeze.__doc__
  for arg, dataset, seeds, knobs in (("", "digits", 3, 5 + 4 + 1), ("quick", "digits", 3, 6),
                                     ("fashion", "fashion_mnist", 5, 6)):
    points = sweep.expand(*config_files.load_config_file(f"{path}:{arg}" if arg else path),
                          "/nonexistent", arg)
    assert len(points) == knobs * seeds and len({p.name for p in points}) == len(points)
    assert {p.config.dataset for p in points} == {dataset}
    assert {(p.config.model, p.config.image_size, p.config.match_macs) for p in points
           } == {(squeeze.MODEL, 32, 0.0)}
    assert sum(not p.config.reduce for p in points) == seeds
  macs = {}
  for p in points:
    c = p.config
    knob = (c.reduce, c.model_kwargs.reduction_ratio, c.model_kwargs.pct3x3)
    if p.config.seed == 0 and knob not in macs:
      run_config.validate(c)
      macs[knob] = complexity.analyze(c.model, reduce=c.reduce, image_size=c.image_size, xla=False,
                                      **run_config.model_kwargs(c))["total"]["macs"]
  assert macs[(True, 0.125, 0.5)] < macs[(True, 0.5, 0.5)] < macs[(True, 1.0, 0.5)]
  assert macs[(True, 0.5, 0.01)] < macs[(True, 0.5, 0.5)] < macs[(True, 0.5, 0.99)]


def test_parse_arg_reads_options_and_key_value_pairs():
  from configs import common
  spec = dict(quick=False, fashion=False, seeds=3, lr=0.1)
  assert common.parse_arg("fashion_quick", **spec) == dict(quick=True, fashion=True, seeds=3,
                                                           lr=0.1)
  assert common.parse_arg("quick,seeds=5,lr=0.05", **spec) == dict(quick=True, fashion=False,
                                                                   seeds=5, lr=0.05)
  assert common.parse_arg("quick=false", **spec)["quick"] is False
  assert common.parse_arg("", **spec) == spec
  for bad, message in (("quik", r"unknown option 'quik'; valid: quick, fashion, seeds, lr"),
                       ("quick,quick", "option 'quick' given twice"), ("quick,", "an empty option"),
                       ("seeds=many", r"seeds='many': give a int"), ("quick=maybe",
                                                                     "give true or false")):
    with pytest.raises(ValueError, match=message):
      common.parse_arg(bad, **spec)


def test_the_study_configs_are_the_recipes_sized_for_a_study():
  """configs/study.py builds on the experiment recipes: the Fashion-MNIST study point differs
  from configs/fashion_inception.py only in what sizes a study, the digits' only in the ratio."""
  from bottleneck.train import records
  from configs import digits_inception, fashion_inception, study
  for arg, recipe in (("fashion", fashion_inception), ("", digits_inception)):
    for variant in ("reduced", "naive"):
      changed = records.differences(run_config.record(recipe.get_config(variant)),
                                    run_config.record(study.base(arg, variant)))
      fields = {line.split(":")[0] for line in changed}
      assert fields <= {
          "model_kwargs.reduction_ratio", "train_split", "num_epochs", "log_every_steps",
          "eval_every_steps", "checkpoint_every_steps"
      }, changed


def test_the_full_data_fashion_study():
  """`fashion,full`: every training image but the last 5,000 (validation), evaluated each epoch
  on both; naive against reduced at the middle budget with the A/A seeds, and ReLU against
  linear at ratio 1/8 with no naive point; `quick` evaluates twice on fewer images."""
  from bottleneck.studies import ablation
  from bottleneck.train import sweep
  from configs import study
  root = os.path.join(os.path.dirname(__file__), "..", "configs")
  expand = lambda name, arg: sweep.expand(  # noqa: E731
      *config_files.load_config_file(f"{root}/{name}.py:{arg}"), "/nonexistent", arg)
  iso, ratio = expand("iso_macs", "fashion,full"), expand("ablation_ratio", "fashion,full")
  assert len(iso) == 2 * 5 + 5 and len(ratio) == 2 * 5
  assert {p.config.match_macs for p in iso} == {study.BUDGETS["fashion_mnist"][1]}
  assert {(p.config.reduce, p.config.model_kwargs.reduction_ratio,
           p.config.model_kwargs.reduction_activation) for p in ratio} == {(True, 0.125, True),
                                                                           (True, 0.125, False)}
  for p in iso + ratio:
    c = p.config
    assert (c.train_split, c.validation_split, c.eval_split) == ("train[:55000]", "train[55000:]",
                                                                 "test")
    assert (c.num_epochs, c.eval_every_epochs, c.eval_every_steps) == (study.FULL_EPOCHS, 1.0, 0)
  run_config.validate(ratio[0].config)
  quick = expand("iso_macs", "fashion,full,quick")[0].config
  assert quick.num_epochs == study.FULL_EPOCHS / 8
  assert quick.eval_every_epochs == quick.num_epochs / 2
  assert (quick.validation_split, quick.eval_split) == ("train[59000:]", "test[:2000]")
  assert ablation.parse_study("ablation:fashion_full", study) == "fashion,full"
  assert not study.ratio_naive("fashion,full") and study.ratio_naive("fashion")
  with pytest.raises(ValueError, match="write fashion,full"):
    study.options("cluttered,full")
