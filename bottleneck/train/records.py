"""How two records of a config (`run_config.record`: a workdir's config.json, a result's
"config") compare (`differences`): the one place that knows what records written by older
checkouts mean. docs/workdirs.md, "Runs from older checkouts"."""

from __future__ import annotations

from bottleneck.train import defaults as defaults_lib, run_config

# Fields that do not change what a run computes (where the data lie, the files read being
# checked against their checksums; how the batches are made), so a workdir accepts a change.
NOT_COMPARED = ("data_dir", "data.source_dir", "data.in_memory_mb", "data.workers")
# Fields added with a default that computes something else than runs made before them did. In a
# record that lacks one, its absence means this value, not today's default: runs from before
# precise batch norm evaluated with the running averages. When each entry came and when to drop
# it: docs/workdirs.md.
ABSENT_MEANS = {"bn_stats_batches": 0}


def record_defaults() -> dict:
  """What a record lacking a field means by it: today's default, or for a field of
  `ABSENT_MEANS` (added since old runs were made) what those runs computed."""
  return {**run_config.record(defaults_lib.get_config()), **ABSENT_MEANS}


def differences(old: dict, new: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
  """What differs between two records, as "field: OLD there, NEW now" lines. A field that one
  record lacks and the other has at its default value is no difference: a record written
  before the field existed computed what the default computes (or, for the fields of
  `ABSENT_MEANS`, what their value there computes)."""
  if defaults is None:
    defaults = record_defaults()
  out = []
  absent = object()
  for k in sorted(set(old) | set(new)):
    if prefix + k in NOT_COMPARED:
      continue
    a, b = old.get(k, absent), new.get(k, absent)
    default = defaults.get(k, absent) if isinstance(defaults, dict) else absent
    if isinstance(a, dict) and isinstance(b, dict):
      out += differences(a, b, f"{prefix}{k}.", default if isinstance(default, dict) else {})
    elif (a is absent and b == default) or (b is absent and a == default):
      continue
    elif a != b:
      show = lambda v: "<absent>" if v is absent else repr(v)
      out.append(f"{prefix}{k}: {show(a)} there, {show(b)} now")
  return out
