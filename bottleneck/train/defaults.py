"""The default training config: every field the training loop reads, with its default.

Experiment configs (configs/) start from it, `variant_config("reduced" | "naive")`, and override
what they change, as the Flax examples' `configs/default.py`. It imports nothing but
`ml_collections`, so that loading a config is instant; `run_config.validate` checks every field
before a run.

`model_kwargs` has an unset (None) field for every argument any registered model takes, so that
each can be set from the command line (`--config.model_kwargs.reduction_ratio=0.5`); only the
ones set reach the model. `paths` says how the ops are computed (`bottleneck.nn.paths`): the
same numbers, another speed. tests/train/test_run_config.py checks both lists against the library.
"""

import ml_collections
from ml_collections.config_dict import placeholder

VARIANTS = ("reduced", "naive")

# Every `model_kwargs` field, with its type (`bottleneck.nn.registry.all_model_arguments()`).
MODEL_ARGUMENTS = {
    "reduction_ratio": float,
    "reduction_activation": bool,  # the 1x1 reductions
    "reduction_places": str,
    "reduction_ratios": str,
    "batch_norm": bool,
    "use_bias": bool,
    "bn_use_scale": bool,  # conv conventions
    "avg_pool_count_pad": bool,
    "bn_momentum": float,
    "lrn": bool,
    "branch5_kernel": int,
    "pool4_window": int,
    "dropout": float,
    "aux_logits": bool,
    "in_channels": int,
    "width": float,
    "width_extra": int,
    "hidden": int,
    "reduction_channels": int,
    "expansion": float,  # MobileNetV2's t
    "pct3x3": float,  # SqueezeNet's 3x3 share of the expand
}
# The kinds of op whose computation a config chooses (`bottleneck.nn.paths.KINDS`).
PATH_KINDS = ("conv_1x1", "conv_kx1", "conv_strided", "max_pool", "conv_taps", "conv_library",
              "conv_depthwise", "norm")


def get_config(arg: str = "reduced") -> ml_collections.ConfigDict:
  """Every field `train_and_evaluate` reads, with defaults, for the named variant: "reduced"
  (1x1 reductions) or "naive"."""
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r}; valid: {', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.model = "inception_small"
  c.reduce = arg == "reduced"
  unset = {k: placeholder(t) for k, t in MODEL_ARGUMENTS.items()}
  c.model_kwargs = ml_collections.ConfigDict(unset)
  c.paths = ml_collections.ConfigDict({kind: "auto" for kind in PATH_KINDS})
  c.dataset = "digits"
  c.data_dir = placeholder(str)  # None: TFDS default directory
  c.train_split, c.eval_split = "train", "test"
  c.image_size = 28
  # > 0: the width multiplier (model_kwargs.width) is found so that the model costs this many
  # multiply-adds per image, or has this many parameters, within 1%: naive and reduced compared
  # at equal compute (bottleneck.measure.complexity.match_width). At most one of the two; it
  # replaces a configured width (result.json's `match` records both).
  c.match_macs = 0.0
  c.match_params = 0
  c.data = ml_collections.ConfigDict(
      dict(mean=0.5, std=0.5, resize="pad", crop_padding=0, flip=False, random_crop=False))
  # Where the original files of `fashion_mnist` / `mnist` are (None: a system package's
  # directory, else a download; bottleneck.data.idx).
  c.data.source_dir = placeholder(str)
  # Splits whose images take at most this many MB are read into memory once, then batches index
  # them (bottleneck.data.pipeline.Split.in_memory); 0: every batch is read from disk.
  c.data.in_memory_mb = 1024
  # Processes that make the training batches ahead of the steps (bottleneck.data.loader): 0
  # makes each in the training process; None: chosen from the cores and the device.
  c.data.workers = placeholder(int)
  c.batch_size = 128
  c.eval_batch_size = 128
  c.num_epochs = 10.0
  c.num_train_steps = 0  # > 0 overrides num_epochs
  c.optimizer = ml_collections.ConfigDict(
      dict(name="sgd", learning_rate=0.1, momentum=0.9, nesterov=False, weight_decay=0.0,
           schedule="cosine", warmup_epochs=0.0, decay_rate=0.95))
  # Batch norm's evaluation statistics are recomputed over this many training batches before
  # each evaluation and the final checkpoint ("precise BN"; 0: the running averages as trained).
  c.bn_stats_batches = 16
  c.dtype = "float32"
  c.seed = 0
  c.log_every_steps = 50
  c.eval_every_steps = 0  # 0: evaluate at the end only
  c.eval_every_epochs = 0.0  # the same in epochs (at most one of the two)
  # A split held out of the training images (e.g. train_split "train[:55000]", this
  # "train[55000:]"), scored at every evaluation beside eval_split: choices along the run
  # (which epoch to report) are made on it, never on the test split. None: no validation.
  c.validation_split = placeholder(str)
  c.checkpoint_every_steps = 200
  c.keep_checkpoints = 3
  return c


# What experiment configs start from: `variant_config(arg)` in their own `get_config(arg)`.
variant_config = get_config
