r"""Accuracy of a saved model (a training workdir, or weights from experiments.import_weights) on
a dataset, with the preprocessing the model expects (bottleneck/train/evaluation.py).

  python -m experiments.evaluate --workdir=runs/digits_fc                      # its own test split
  python -m experiments.evaluate --workdir=runs/tv_googlenet --dataset=imagenet2012 --split=validation
  python -m experiments.evaluate --workdir=runs/tv_googlenet --dataset=imagenette --split=validation

Catalog datasets download on first use and need the catalog extra (pip install -e '.[catalog]');
imagenet2012 must be downloaded by hand (TFDS says where to put it).
"""

import json

from absl import flags

from bottleneck.train import evaluation
from bottleneck.util import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir or imported weights.",
                               required=True)
_DATASET = flags.DEFINE_string("dataset", None, "TFDS name; default: the model's own.")
_SPLIT = flags.DEFINE_string("split", None, "Default: the model's evaluation split.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_SOURCE_DIR = flags.DEFINE_string(
    "source_dir", None, "The original files of a dataset read from them (fashion_mnist, "
    "mnist: their four IDX files); default: the training run's, for its own dataset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Examples per forward pass.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Only the first N (a quick look).")
_FORMAT = flags.DEFINE_enum("format", "text", ("text", "json"), "Output format.")


def main(argv):
  del argv
  result = evaluation.evaluate(_WORKDIR.value, dataset=_DATASET.value, split=_SPLIT.value,
                               batch_size=_BATCH_SIZE.value, max_examples=_MAX_EXAMPLES.value,
                               data_dir=_DATA_DIR.value, source_dir=_SOURCE_DIR.value)
  print(json.dumps(result, indent=1) if _FORMAT.value == "json" else evaluation.format_text(result))


if __name__ == "__main__":
  cli.run(main)
