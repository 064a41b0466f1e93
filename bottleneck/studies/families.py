"""The 1x1 across families: one table of what each family's 1x1s cut, save and do to accuracy.

Per family (Inception's reductions in GoogLeNet, ResNet-50's bottleneck, SqueezeNet's squeeze,
MobileNetV2's expanding 1x1s, NiN's per-pixel MLP), the network as published against the same
network without its 1x1s (`reduce=False`):

- cost at the published widths and input (analytic, computed here): parameters, multiply-adds,
  and what a training step holds per image for the backward pass (`complexity.saved_bytes`);
- time, from a benchmark run (`experiments.benchmark`, its benchmark.json): forward+backward
  of the family's blocks at their real sizes, without over with the 1x1s, geometric mean and
  range over the blocks;
- accuracy at equal compute, from a sweep (configs/ablation_families.py): with minus without
  the 1x1s, both at the family's budget of multiply-adds, and the knob its paper studied
  against the published block, each a paired difference with its 95% interval over the seeds
  and the test set (`results.paired_accuracy`) and its verdict.

A part whose measurement is not given (or has no rows for the family) reads "not measured".
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import pandas as pd

from bottleneck.analysis import results
from bottleneck.measure import complexity
from bottleneck.nn import registry
from bottleneck.util import errors, workdir as wd

NOT_MEASURED = "not measured"
EXPLAINED = (
    "Each family's network as published against the same network without its 1x1s. Costs at "
    "the published widths and input (analytic); \"held per image\": what a training step keeps "
    "for the backward pass. Block time: forward+backward of the family's blocks at their real "
    "sizes, without over with the 1x1s (above 1: the 1x1s save time). Accuracy: with minus "
    "without the 1x1s, both at the family's budget of multiply-adds (configs/"
    "ablation_families.py), and the knob its paper studied minus the published block; points, "
    "95% interval over the seeds and the test set.")


@dataclasses.dataclass(frozen=True)
class Family:
  name: str  # as the table shows it
  model: str  # the published network (registry name)
  blocks: tuple[str, ...]  # its benchmark cases
  knob: str  # the paper's knob, as the table shows it
  published_activation: bool = True  # `reduction_activation` as published
  study_model: str | None = None  # the network the families sweep trains (default: `model`)

  @property
  def trained(self) -> str:
    return self.study_model or self.model


FAMILIES = (
    Family("Inception (GoogLeNet)", "googlenet",
           ("inception_3a", "inception_4a", "inception_4e", "inception_5b"), "linear reductions",
           study_model="inception_small"),
    Family("ResNet bottleneck", "resnet50",
           ("resnet_layer1", "resnet_layer2", "resnet_layer3", "resnet_layer4"), "linear reduce"),
    Family("SqueezeNet fire", "squeezenet1_1", ("fire3", "fire7", "fire9"), "linear squeeze"),
    Family("MobileNetV2 inverted residual", "mobilenet_v2",
           ("mobilenet_block3", "mobilenet_block6", "mobilenet_block13", "mobilenet_block16"),
           "ReLU6 projection", published_activation=False),
    Family("NiN mlpconv", "nin", ("nin_mlpconv1", "nin_mlpconv2", "nin_mlpconv3"), "linear 1x1s"),
)


def cost(family: Family) -> dict:
  """Parameters, multiply-adds and held bytes per image (training), with and without the 1x1s,
  at the published widths and input."""
  out = {}
  for reduce in (True, False):
    model = registry.abstract_model(family.model, reduce=reduce)
    x = jax.ShapeDtypeStruct((1, model.image_size, model.image_size, model.in_channels),
                             jnp.float32)
    out[reduce] = {
        "params": complexity.count_params(model), "macs": complexity.module_macs(model, x.shape),
        "held": complexity.saved_bytes(model, x), "image_size": model.image_size
    }
  return out


def block_times(benchmark: dict | None, family: Family) -> dict | None:
  """Time without over with the 1x1s for each of the family's blocks in a benchmark.json
  (published widths, first batch and path set found): geometric mean, min, max, blocks."""
  if not benchmark:
    return None
  found = {}
  for r in benchmark.get("ratios", []):
    if r.get("name") in family.blocks and r.get("ratio") is None and r["name"] not in found:
      value = r.get("time naive/reduced")
      if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        found[r["name"]] = value
  if not found:
    return None
  values = list(found.values())
  return {
      "mean": math.exp(sum(map(math.log, values)) / len(values)), "min": min(values),
      "max": max(values), "blocks": len(values), "batch": next(
          (r.get("batch") for r in benchmark["ratios"] if r.get("name") in found), None)
  }


def accuracy(runs: pd.DataFrame | None, family: Family) -> dict | None:
  """From the families sweep's runs: with minus without the 1x1s at the family's budget, and
  the knob against the published block (`results.paired_accuracy`), each with its verdict."""
  if runs is None:
    return None
  mine = runs[runs["model"] == family.trained]
  if mine.empty:
    return None
  for column in ("dataset", "budget"):
    values = sorted(map(str, mine[column].unique()))
    if len(values) > 1:  # runs of two sweeps: their accuracies are not to be paired
      raise errors.ConfigError(
          f"the {family.trained} runs of the sweep span {column}s {', '.join(values)}; give the "
          "workdir of one configs/ablation_families.py sweep.")
  published = "relu" if family.published_activation else "linear"
  knob = "linear" if family.published_activation else "relu"
  with_ = {"variant": "reduced", "activation": published}
  out = {
      "budget": mine["budget"].iloc[0], "dataset": mine["dataset"].iloc[0], "model": family.trained
  }
  for key, first, second, names in (("1x1s", with_, {"variant": "naive"}, ("with", "without")),
                                    ("knob", {"variant": "reduced", "activation": knob}, with_,
                                     (family.knob, "published"))):
    paired = results.paired_accuracy(mine, first, second)
    out[key] = {**paired, "verdict": results.verdict(paired["interval"], *names)}
    side = lambda where: mine[(mine[list(where)] == pd.Series(where)).all(axis=1)]
    out[key]["accuracy"] = (100 * side(first)["eval_accuracy"].mean(),
                            100 * side(second)["eval_accuracy"].mean())
  return out


def _study(a: dict | None) -> str:
  return NOT_MEASURED if a is None else f"{a['model']} on {a['dataset']}, {a['budget']}"


def _pair(c: dict, key: str, unit: float, suffix: str) -> str:
  return f"{c[True][key] / unit:.3g}{suffix} / {c[False][key] / unit:.3g}{suffix}"


def _ratio(a, b) -> str:
  return f"{a / b:.2f}x"


def _difference(d: dict | None, key: str) -> str:
  if d is None:
    return NOT_MEASURED
  p = d[key]
  if not p["paired seeds"]:
    return NOT_MEASURED
  first, second = p["accuracy"]
  return (f"{first:.1f} vs {second:.1f}%: {p[results.PAIRED_DIFFERENCE]:+.2f} "
          f"{p[results.INTERVAL]} ({p['verdict']})")


def table(benchmark: dict | None = None, runs: pd.DataFrame | None = None,
          families=FAMILIES) -> pd.DataFrame:
  """One row per family (module docstring)."""
  rows = []
  for f in families:
    c = cost(f)
    t = block_times(benchmark, f)
    a = accuracy(runs, f)
    rows.append({
        "family": f.name,
        "network": f"{f.model} @{c[True]['image_size']}",
        "params with / without": _pair(c, "params", 1e6, "M"),
        "MACs with / without": _pair(c, "macs", 1e9, "G"),
        "MACs without / with": _ratio(c[False]["macs"], c[True]["macs"]),
        "held per image, without / with": _ratio(c[False]["held"], c[True]["held"]),
        "block time, without / with": NOT_MEASURED if t is None else
                                      (f"{t['mean']:.2f}x ({t['min']:.2f}-{t['max']:.2f}, "
                                       f"{t['blocks']} blocks, batch {t['batch']})"),
        "accuracy: network, data, MACs budget per image": _study(a),
        "accuracy at equal MACs, with vs without": _difference(a, "1x1s"),
        "the paper's knob vs published": NOT_MEASURED
                                         if a is None else f"{f.knob}: {_difference(a, 'knob')}",
    })
  return pd.DataFrame(rows)


def load(benchmark_path: str | None, sweep_dir: str | None):
  """The benchmark.json and the sweep's runs (`results.collect`), each None when not given;
  ConfigError naming a path that is given but missing or unreadable."""
  benchmark = None
  if benchmark_path:
    if not os.path.isfile(benchmark_path):
      raise errors.ConfigError(f"--benchmark={benchmark_path!r} does not exist; give the "
                               "benchmark.json an experiments.benchmark --out wrote.")
    benchmark = wd.read_json(benchmark_path, ("ratios",))
    ratios = benchmark["ratios"]
    if not isinstance(ratios, list) or not all(isinstance(r, dict) for r in ratios):
      raise wd.CorruptFile(f"{benchmark_path}: its 'ratios' is not a list of objects; it is "
                           "not an experiments.benchmark benchmark.json.")
  if sweep_dir and not os.path.isdir(sweep_dir):
    raise errors.ConfigError(f"--sweep={sweep_dir!r} is not a directory; give the workdir "
                             "of configs/ablation_families.py's sweep.")
  runs = results.collect(sweep_dir) if sweep_dir else None
  return benchmark, runs


def markdown(frame: pd.DataFrame) -> str:
  """The table transposed (a column per family: the rows are long), as markdown."""
  return frame.set_index("family").T.to_markdown()
