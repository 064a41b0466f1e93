"""`bottleneck.train.builders`: what a training config builds."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bottleneck.train import builders, run_config
from bottleneck.util.errors import ConfigError


def test_schedules_and_optimizers():
  c = run_config.default_config()
  c.optimizer.learning_rate, c.optimizer.decay_rate = 0.1, 0.95
  c.optimizer.schedule = "exponential"
  s = builders.make_schedule(c, steps_per_epoch=10, total_steps=100)
  assert float(s(9)) == pytest.approx(0.1) and float(s(10)) == pytest.approx(0.095)
  assert float(s(25)) == pytest.approx(0.1 * 0.95**2)
  c.optimizer.schedule, c.optimizer.warmup_epochs = "cosine", 1.0
  s = builders.make_schedule(c, steps_per_epoch=10, total_steps=100)
  assert float(s(0)) == 0.0 and float(s(10)) == pytest.approx(0.1)
  assert float(s(100)) == pytest.approx(0.0, abs=1e-7)
  with pytest.raises(ConfigError, match="is 100 steps .* not fewer than the run's 100"):
    builders.make_schedule(c, steps_per_epoch=100, total_steps=100)  # nothing left to decay
  c.optimizer.schedule = "constant"
  assert float(builders.make_schedule(c, 10, 100)(77)) == pytest.approx(0.1)
  # Weight decay reaches the update: with a zero gradient, SGD (decay added to the gradient)
  # and AdamW (decoupled decay) both shrink a weight by learning_rate x weight_decay.
  params = {"w": jnp.full((3,), 2.0)}
  for name in ("sgd", "adamw"):
    for decay in (0.0, 0.1):
      c.optimizer.name, c.optimizer.weight_decay = name, decay
      opt = builders.make_optimizer(c, optax.constant_schedule(0.5))
      updates, _ = opt.update({"w": jnp.zeros(3)}, opt.init(params), params)
      new = optax.apply_updates(params, updates)["w"]
      np.testing.assert_allclose(new, 2.0 * (1 - 0.5 * decay), rtol=1e-6, err_msg=name)


def test_a_name_the_checks_refuse_is_never_built_as_another():
  """The builders trust `run_config.validate`, yet an unknown name (a caller that skipped it)
  is an error, not the last branch's schedule or optimizer."""
  c = run_config.default_config()
  c.optimizer.schedule = "step"
  with pytest.raises(ValueError, match="schedule='step'"):
    builders.make_schedule(c, 10, 100)
  c.optimizer.name = "lamb"
  with pytest.raises(ValueError, match="name='lamb'"):
    builders.make_optimizer(c, optax.constant_schedule(0.1))
