r"""The cost of dimensionality reduction: a 1x1 conv from H x W x C to H x W x D, for several D.

  python -m experiments.reduction_cost --height=100 --width=100 --channels=512 --depths=16,32,64,128,256,512
"""

import json

import pandas as pd
from absl import flags

from bottleneck.analysis import tables
from bottleneck.measure import complexity
from bottleneck.util import cli, errors, validation

_HEIGHT = flags.DEFINE_integer("height", 100, "Map height.")
_WIDTH = flags.DEFINE_integer("width", 100, "Map width.")
_CHANNELS = flags.DEFINE_integer("channels", 512, "Input channels C.")
_DEPTHS = flags.DEFINE_list("depths", ["16", "32", "64", "128", "256", "512"],
                            "Output channels D of the 1x1 conv.")
_FORMAT = flags.DEFINE_enum("format", "table", [f for f in tables.FORMATS if f != "latex"],
                            "Output format.")


def main(argv):
  del argv
  for name, value in (("height", _HEIGHT.value), ("width", _WIDTH.value), ("channels",
                                                                           _CHANNELS.value)):
    validation.positive_int(value, name, "reduction_cost")
  try:
    depths = [int(d) for d in _DEPTHS.value]
  except ValueError:
    depths = []
  if not depths or min(depths) < 1:
    raise errors.ConfigError(f"--depths={','.join(_DEPTHS.value)!r} is invalid; it must be "
                             "a comma-separated list of whole numbers >= 1.")
  rows = complexity.reduction_cost(_HEIGHT.value, _WIDTH.value, _CHANNELS.value, depths)
  if _FORMAT.value == "json":
    print(json.dumps(rows, indent=1))
  else:
    print(tables.render(pd.DataFrame(rows), _FORMAT.value))


if __name__ == "__main__":
  cli.run(main)
