"""The Dense-head digits classifier of configs/digits_fc_head.py, trained for a few steps: the
report's 1x1 = fully connected part in the tests."""

from configs import digits_fc_head


def get_config():
  c = digits_fc_head.get_config()
  c.num_train_steps = 30  # > 0: instead of the epochs
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 15
  return c
