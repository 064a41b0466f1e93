"""`bottleneck.util.config_files`: config files as `--config` names them."""

import os

import pytest

from bottleneck.util import config_files
from bottleneck.util.errors import ConfigError
from tests import ROOT


def test_a_config_file_and_its_variant_load():
  module, config = config_files.load_config_file(
      os.path.join(ROOT, "configs", "digits_inception.py:naive"))
  assert config.reduce is False and callable(module.get_config)


def test_bad_config_files_are_one_clear_error(tmp_path):
  with pytest.raises(ConfigError, match=r"config file 'nope.py' does not exist"):
    config_files.load_config_file("nope.py")
  with pytest.raises(ConfigError, match=r"unknown variant 'x'"):
    config_files.load_config_file(os.path.join(ROOT, "configs", "digits_inception.py:x"))
  broken = tmp_path / "broken config[1].py"
  broken.write_text("def get_config():\n  return 1 / 0\n")
  with pytest.raises(ConfigError, match=r"broken config\[1\].py: ZeroDivisionError: division"):
    config_files.load_config_file(str(broken))
