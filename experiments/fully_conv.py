r"""Convolutionalize a trained flatten + Dense classifier and classify a larger canvas in one pass.

  python -m experiments.train --config=configs/digits_fc_head.py --workdir=runs/digits_fc
  python -m experiments.fully_conv --workdir=runs/digits_fc --image_size=32 [--format=json]
"""

import json

from absl import flags

from bottleneck import cli, fully_conv

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained digits_fc_head workdir.",
                               required=True)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Side of the canvas.")
_NUM_DIGITS = flags.DEFINE_integer("num_digits", 4, "Test digits placed on the canvas.")
_SEED = flags.DEFINE_integer("seed", 0, "Which digits, and where.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Heat maps go here (default WORKDIR/fully_conv).")
_FORMAT = flags.DEFINE_enum("format", "text", ("text", "json"), "Output format.")


def main(argv):
  del argv
  out = fully_conv.run(_WORKDIR.value, _IMAGE_SIZE.value, num_digits=_NUM_DIGITS.value,
                       seed=_SEED.value, out_dir=_OUT_DIR.value)
  print(json.dumps(out, indent=1) if _FORMAT.value == "json" else fully_conv.format_text(out))


if __name__ == "__main__":
  cli.run(main)
