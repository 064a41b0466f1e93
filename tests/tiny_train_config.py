"""A training config small enough for tests (the subprocess tests load it by path)."""

from bottleneck.train import sweep
from configs.default import get_config as default_config


def get_config(**overrides):
  """The tiny config; `overrides` set dotted fields (`**{"optimizer.learning_rate": 0.1}`)."""
  c = default_config()
  # The smallest network that has what the training loop handles (convs with batch norm, a max
  # pool, a 1x1 reduction, Dense layers): it compiles in about a second where a
  # tiny inception_small takes about 25 s, in every process the tests start.
  c.model, c.reduce, c.dataset = "flatten_head_cnn", True, "digits"
  c.model_kwargs.width = 0.5
  c.model_kwargs.hidden = 16
  c.model_kwargs.batch_norm = True
  c.model_kwargs.in_channels = 1
  c.image_size = 8
  c.data.crop_padding = 1
  c.batch_size = c.eval_batch_size = 32
  c.num_train_steps = 24
  c.optimizer.learning_rate = 0.05
  c.log_every_steps = 4
  c.checkpoint_every_steps = 8
  c.keep_checkpoints = 2
  return sweep.apply_overrides(c, overrides) if overrides else c
