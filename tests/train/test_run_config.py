"""The training config: every field checked before any work, one error naming every problem."""

import subprocess
import sys

import pytest

from bottleneck.nn import paths, registry
from bottleneck.train import run_config
from bottleneck.util.errors import ConfigError
from configs import default
from tests import ROOT, tiny_train_config

config_with = tiny_train_config.get_config


def test_the_tiny_config_and_every_default_are_valid():
  run_config.validate(config_with())
  run_config.validate(run_config.default_config())


def test_the_default_config_lists_what_the_library_takes():
  """configs/default.py spells out the model arguments and path kinds (it imports only
  ml_collections); they must be exactly the library's."""
  assert default.MODEL_ARGUMENTS == registry.all_model_arguments()
  assert default.PATH_KINDS == paths.KINDS


def test_loading_a_config_imports_no_jax():
  code = ("import sys; from configs import digits_inception; digits_inception.get_config(); "
          "heavy = [m for m in sys.modules if m.split('.')[0] in ('jax', 'optax', 'orbax', "
          "'tensorflow_datasets', 'bottleneck') and m not in ('bottleneck', 'bottleneck.train', "
          "'bottleneck.train.defaults')]; assert not heavy, heavy")
  subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


@pytest.mark.parametrize("overrides,match", [
    ({"optimizer.learning_rate": -0.1}, r"optimizer.learning_rate=-0.1 is invalid; it must be "
     r"a number > 0"),
    ({"optimizer.learning_rate": float("nan")}, r"learning_rate=nan is invalid"),
    ({"num_train_steps": -5}, r"num_train_steps=-5 is invalid; it must be a whole number >= 0"),
    ({"num_train_steps": 0, "num_epochs": 0.0}, r"num_epochs=0.0 is invalid"),
    ({"keep_checkpoints": 0}, r"keep_checkpoints=0 is invalid; it must be a whole number >= 1"),
    ({"data.resize": "foo"}, r"unknown data.resize 'foo'; valid: pad, resize"),
    ({"batch_size": 0}, r"batch_size=0 is invalid"),
    ({"batch_size": -3}, r"batch_size=-3 is invalid"),
    ({"eval_batch_size": 0}, r"eval_batch_size=0 is invalid"),
    ({"log_every_steps": 0}, r"log_every_steps=0 is invalid"),
    ({"checkpoint_every_steps": 0}, r"checkpoint_every_steps=0 is invalid"),
    ({"data.crop_padding": -1}, r"data.crop_padding=-1 is invalid"),
    ({"seed": -1}, r"seed=-1 is invalid"),
    ({"optimizer.momentum": 1.0}, r"optimizer.momentum=1.0 is invalid; it must be a number "
     r">= 0 and < 1"),
    ({"data.std": 0.0}, r"data.std=0.0 is invalid"),
    ({"dtype": "float16"}, r"unknown dtype 'float16'; valid: float32, bfloat16"),
    ({"paths.max_pool": "fast"}, r"unknown max_pool 'fast'"),
    ({"model_kwargs.width": 0.0
     }, r"flatten_head_cnn: model_kwargs.width=0.0 is invalid; it must be a "
     r"number > 0"),
    ({
        "model": "inception_small", "model_kwargs.hidden": None, "model_kwargs.batch_norm": None,
        "model_kwargs.width": -1.0
    }, r"inception_small: model_kwargs.width=-1.0 is invalid"),
    ({"model_kwargs.branch5_kernel": 3}, r"unknown argument of model 'flatten_head_cnn' "
     r"'branch5_kernel'"),
    ({"image_size": 3}, r"image_size=3 is too small; the minimum is 6"),
    ({"match_macs": -1.0}, r"match_macs=-1.0 is invalid"),
    ({"data.in_memory_mb": -1}, r"data.in_memory_mb=-1 is invalid; it must be a number >= 0"),
    ({"data.workers": -1}, r"data.workers=-1 is invalid; it must be a whole number >= 0"),
    ({"eval_every_steps": 8, "eval_every_epochs": 1.0}, r"eval_every_steps and eval_every_epochs "
     "exclude each other"),
    ({"eval_every_epochs": -1.0}, r"eval_every_epochs=-1.0 is invalid"),
    ({"validation_split": "train"}, r"validation_split='train' is, holds or is part of the "
     "training"),
    ({"validation_split": "train[:100]"}, r"validation_split='train\[:100\]' is, holds or is"),
    ({"validation_split": "test[5000:]"}, r"validation_split='test\[5000:\]' is, holds or is"),
    ({"train_split": "train[:1000]", "validation_split": "train"}, r"validation_split='train' "
     "is, holds or is part of"),
    ({"data.workers": 1.5}, r"data.workers=1.5 is invalid; it must be a whole number >= 0"),
    ({"match_macs": 1e5, "match_params": 5000}, r"match_macs and match_params exclude each "
     r"other"),
    ({
        "model": "inception_v3", "model_kwargs.hidden": None, "model_kwargs.batch_norm": None,
        "model_kwargs.width": None, "model_kwargs.in_channels": None, "image_size": 75,
        "match_macs": 1e9
    }, r"match_macs needs a model with a width multiplier; 'inception_v3' "
     r"has none"),
    ({"model_kwargs.reduction_places": "9x9"}, r"unknown argument of model 'flatten_head_cnn' "
     r"'reduction_places'"),
])
def test_bad_values_are_refused_naming_the_field(overrides, match):
  with pytest.raises(ConfigError, match=match):
    run_config.validate(config_with(**overrides))


def test_every_problem_in_one_error_and_unknown_fields_with_the_closest():
  c = config_with(seed=-1, keep_checkpoints=0)
  c.optimizer.learnin_rate = 0.1  # a Python config may add fields; the check refuses them
  with pytest.raises(ConfigError) as e:
    run_config.validate(c)
  text = str(e.value)
  assert "\n" not in text
  assert "seed=-1" in text and "keep_checkpoints=0" in text
  assert "no field 'optimizer.learnin_rate'. Did you mean 'learning_rate'?" in text


def test_model_kwargs_every_model_argument_settable_only_set_ones_recorded():
  c = run_config.default_config()
  for name in ("reduction_ratio", "branch5_kernel", "width", "reduction_activation"):
    assert name in c.model_kwargs and c.model_kwargs[name] is None
  c.model_kwargs.reduction_ratio = 0.5
  assert run_config.model_kwargs(c) == {"reduction_ratio": 0.5}
  assert run_config.record(c)["model_kwargs"] == {"reduction_ratio": 0.5}
