r"""Another framework's weights in our network, saved as a model directory that evaluation,
fully_conv and analyze load like a training workdir.

  # torchvision's ImageNet weights (downloads once; needs the torch extra):
  python -m experiments.import_weights --source=torchvision --model=googlenet_bn --out=runs/tv_googlenet
  # offline: torchvision's random initialization, or a state dict on disk:
  python -m experiments.import_weights --source=torchvision --model=inception_v3 --out=DIR --random
  python -m experiments.import_weights --source=torchvision --model=googlenet_bn --out=DIR --weights_file=googlenet-1378be20.pth
  # Keras's InceptionV3 (needs the keras extra): its ImageNet weights, or a .weights.h5 file
  python -m experiments.import_weights --source=keras --model=inception_v3 --out=DIR

Every tensor is checked against the layer it lands in; `--out` must be new or empty.
"""

import json
import sys

from absl import flags

from bottleneck.nn import import_weights
from bottleneck.train import saved_models
from bottleneck.util import cli

_SOURCE = flags.DEFINE_string("source", "torchvision",
                              f"One of {', '.join(import_weights.SOURCES)}.")
_MODEL = flags.DEFINE_string("model", None, "googlenet_bn or inception_v3 (torchvision); "
                             "inception_v3 (keras).", required=True)
_OUT = flags.DEFINE_string("out", None, "The directory to write (new or empty).", required=True)
_RANDOM = flags.DEFINE_bool("random", False, "The source's random initialization (offline).")
_SEED = flags.DEFINE_integer("seed", 0, "With --random: the source's random seed.")
_WEIGHTS_FILE = flags.DEFINE_string(
    "weights_file", None, "A torchvision state dict (.pth) or "
    "a Keras weights file (.weights.h5) instead of "
    "downloading the ImageNet weights.")


def main(argv):
  del argv
  if _RANDOM.value and _WEIGHTS_FILE.value:
    raise cli.ConfigError("--random and --weights_file exclude each other: give one.")
  if flags.FLAGS["seed"].present and not _RANDOM.value:
    raise cli.ConfigError("--seed is the seed of --random's initialization; give --random too.")
  out = saved_models.import_to(_OUT.value, _SOURCE.value, _MODEL.value,
                               random_seed=_SEED.value if _RANDOM.value else None,
                               weights_file=_WEIGHTS_FILE.value)
  print(json.dumps(out, indent=1))
  print(
      f"wrote {_OUT.value}: load it with experiments.evaluate, fully_conv or analyze "
      f"--workdir={_OUT.value}", file=sys.stderr)


if __name__ == "__main__":
  cli.run(main)
