"""What a workdir records of a config, and how two records compare (old runs included)."""

from bottleneck.train import records, run_config
from tests import tiny_train_config

config_with = tiny_train_config.get_config


def test_differences_ignore_where_and_how_the_data_is_stored():
  a = run_config.record(config_with(data_dir="/a"))
  b = run_config.record(
      config_with(**{"data_dir": "/b", "num_train_steps": 90, "data.in_memory_mb": 0}))
  assert records.differences(a, b) == ["num_train_steps: 24 there, 90 now"]


def test_a_field_added_since_a_record_was_written_at_its_default_is_no_difference():
  """Workdirs written before a field existed (match_macs, ...) still resume; a record whose
  field was set to something else than the default does not."""
  new = run_config.record(config_with())
  old = {k: v for k, v in new.items() if k not in ("match_macs", "match_params")}
  assert records.differences(old, new) == []
  changed = run_config.record(config_with(match_params=5000))
  assert records.differences(old, changed) == ["match_params: <absent> there, 5000 now"]


def test_runs_from_before_precise_batch_norm_differ_from_todays_default():
  """A record without bn_stats_batches was evaluated with the running averages: it differs
  from today's default (16), and matches bn_stats_batches=0."""
  new = run_config.record(config_with())
  old = {k: v for k, v in new.items() if k != "bn_stats_batches"}
  assert records.differences(old, new) == ["bn_stats_batches: <absent> there, 16 now"]
  assert records.differences(old, run_config.record(config_with(bn_stats_batches=0))) == []
