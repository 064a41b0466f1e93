r"""Convolutionalize a classifier and classify a larger input in one pass (a map of scores).

  # the digits: a trained flatten + Dense classifier on a canvas of test digits
  python -m experiments.train --config=configs/digits_fc_head.py --workdir=runs/digits_fc
  python -m experiments.fully_conv --workdir=runs/digits_fc --image_size=32 [--format=json]
  # GoogLeNet (or any network with a pooled head) on scikit-learn's two photos
  python -m experiments.import_weights --source=torchvision --model=googlenet_bn --out=runs/tv_googlenet
  python -m experiments.fully_conv --workdir=runs/tv_googlenet --image_size=320
"""

import json

from absl import flags

from bottleneck.studies import fully_conv
from bottleneck.util import cli

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A trained digits_fc_head workdir, or a network whose head averages "
    "per-pixel class scores (GoogLeNet, Inception-v3, ResNet, SqueezeNet, MobileNetV2, NiN; "
    "e.g. from experiments.import_weights).", required=True)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Side of the digits' canvas (default "
    "32), or the photos' shorter side (default 320).")
_NUM_DIGITS = flags.DEFINE_integer("num_digits", 4, "Test digits placed on the canvas.")
_SEED = flags.DEFINE_integer("seed", 0, "Which digits, and where.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Heat maps go here (default WORKDIR/fully_conv).")
_CALIBRATE_BN = flags.DEFINE_bool(
    "calibrate_bn", False, "A network with random weights: set "
    "batch-norm statistics from the photos first (a demo "
    "without trained weights).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (median).")
_FORMAT = flags.DEFINE_enum("format", "text", ("text", "json"), "Output format.")


def main(argv):
  del argv
  out = fully_conv.run(_WORKDIR.value, _IMAGE_SIZE.value, num_digits=_NUM_DIGITS.value,
                       seed=_SEED.value, out_dir=_OUT_DIR.value, calibrate_bn=_CALIBRATE_BN.value,
                       repeats=_REPEATS.value)
  print(json.dumps(out, indent=1) if _FORMAT.value == "json" else fully_conv.format_text(out))


if __name__ == "__main__":
  cli.run(main)
