r"""Parameters and multiply-adds of a network, reduced (1x1 reductions) and naive, per block.

  python -m experiments.analyze --model=googlenet --reduce=both --format=table
  python -m experiments.analyze --workdir=runs/tv_googlenet   # the model saved there
  # naive and reduced at equal compute: the width multiplier that costs 50M MACs (or N params)
  python -m experiments.analyze --model=inception_small --reduce=both --image_size=28 --num_classes=10 --match_macs=50e6 --format=json
  # memory: bytes moved, arithmetic intensity, what training holds (docs/memory.md)
  python -m experiments.analyze --model=googlenet --memory [--dtype=bfloat16] --format=json

Nothing is trained or run: the model is built abstractly and its forward traced and compiled.
"""

from absl import flags

from bottleneck.analysis import tables
from bottleneck.measure import complexity
from bottleneck.nn import registry
from bottleneck.train import saved_models
from bottleneck.util import cli, env

_MODEL = flags.DEFINE_string("model", "googlenet", f"One of {', '.join(registry.MODELS)}.")
_REDUCE = flags.DEFINE_string(
    "reduce", "both", "true (1x1 reductions), false (naive) or both (those the model has: "
    "resnet18 and resnet34 have no reductions to switch).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input side; default: the model's own.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Default: the model's own.")
_FORMAT = flags.DEFINE_enum("format", "table", [f for f in tables.FORMATS if f != "latex"],
                            "Output format.")
_XLA = flags.DEFINE_bool("xla", True, "Also compile the forward for XLA's FLOP count.")
_MATCH_MACS = flags.DEFINE_float(
    "match_macs", None, "Find the width multiplier at which each "
    "variant costs this many MACs per image (within 1%).")
_MATCH_PARAMS = flags.DEFINE_float("match_params", None, "... or has this many parameters.")
_MEMORY = flags.DEFINE_bool(
    "memory", False, "Also the memory accounting per layer, conv and "
    "network: bytes moved, arithmetic intensity, bytes held for the "
    "backward pass (docs/memory.md).")
_DTYPE = flags.DEFINE_enum(
    "dtype", None, list(env.DTYPES), "With --memory: the compute dtype "
    "the bytes are counted in (default: the model's, float32).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A training workdir or imported weights "
    "(experiments.import_weights): analyze the model saved there "
    "(--model, --reduce, --num_classes come from it).")


def main(argv):
  del argv
  if _DTYPE.value and not _MEMORY.value:
    raise cli.ConfigError(f"--dtype={_DTYPE.value} sets the dtype of the memory figures; add "
                          "--memory.")
  extra = {"memory": _MEMORY.value, **({"dtype": _DTYPE.value} if _DTYPE.value else {})}
  if _WORKDIR.value:
    given = [f"--{n}" for n in ("model", "reduce", "num_classes") if flags.FLAGS[n].present]
    if given:
      raise cli.ConfigError(f"{', '.join(given)} and --workdir exclude each other: the model "
                            "saved in the workdir is analyzed as it is.")
    reports = [
        saved_models.complexity_report(_WORKDIR.value, image_size=_IMAGE_SIZE.value, xla=_XLA.value,
                                       **extra)
    ]
  elif _MATCH_MACS.value is not None or _MATCH_PARAMS.value is not None:
    if _MATCH_MACS.value is not None and _MATCH_PARAMS.value is not None:
      raise cli.ConfigError("--match_macs and --match_params exclude each other; give one.")
    metric, budget = (("macs", _MATCH_MACS.value) if _MATCH_MACS.value is not None else
                      ("params", _MATCH_PARAMS.value))
    reports = [
        complexity.analyze_matched(_MODEL.value, reduce=r, metric=metric, budget=budget,
                                   image_size=_IMAGE_SIZE.value, num_classes=_NUM_CLASSES.value,
                                   xla=_XLA.value, **extra) for r in _variants()
    ]
  else:
    reports = [
        complexity.analyze(_MODEL.value, reduce=r, image_size=_IMAGE_SIZE.value,
                           num_classes=_NUM_CLASSES.value, xla=_XLA.value, **extra)
        for r in _variants()
    ]
  print(tables.render_reports(reports, _FORMAT.value), end="")


def _variants() -> list[bool]:
  """--reduce's values; "both": the variants the model has (`registry.ModelSpec.variants`)."""
  asked = cli.parse_bool_or_both(_REDUCE.value, "reduce")
  if len(asked) == 1:
    return asked
  return [r for r in asked if r in registry.get_spec(_MODEL.value).variants]


if __name__ == "__main__":
  cli.run(main)
