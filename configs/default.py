r"""The default training config: every field `experiments.train` reads, with its default.

  python -m experiments.train --config=configs/default.py:naive --workdir=runs/default_naive

The fields live with the code that reads them (`bottleneck/train/defaults.py`); experiment
configs start from `variant_config("reduced" | "naive")` and override what they change.
"""

from bottleneck.train import defaults

MODEL_ARGUMENTS, PATH_KINDS, VARIANTS = defaults.MODEL_ARGUMENTS, defaults.PATH_KINDS, defaults.VARIANTS
get_config = variant_config = defaults.get_config
