r"""A small CNN with a flatten + Dense head on the digits, to convolutionalize afterwards.

  python -m experiments.train --config=configs/digits_fc_head.py --workdir=runs/digits_fc
  python -m experiments.fully_conv --workdir=runs/digits_fc --image_size=32

Variants: `naive` (default: conv, conv, pool, flatten, Dense 64, Dense 10) and `reduced` (a 1x1
conv to 8 channels before the flatten, which cuts the first Dense layer 4x).
"""

from configs.default import variant_config


def get_config(arg: str = "naive"):
  c = variant_config(arg)
  c.model = "flatten_head_cnn"
  c.dataset = "digits"
  c.image_size = 8
  c.data.crop_padding = 1
  c.batch_size = c.eval_batch_size = 64
  c.num_epochs = 20.0
  c.optimizer.learning_rate = 0.05
  c.optimizer.weight_decay = 5e-4
  c.log_every_steps = 21
  c.eval_every_steps = 105
  c.checkpoint_every_steps = 105
  return c
