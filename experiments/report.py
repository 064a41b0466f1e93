r"""The main job: complexity tables, the digits sweep (reduced vs naive, 3 seeds), a report.

  python -m experiments.report --workdir=runs/report     (or the console script bottleneck-report)

Offline, on a CPU, in a few minutes; rerunning reuses finished work (refusing runs whose config
changed since, unless --rerun_changed). Writes DIR/REPORT.md.
"""

import sys

from absl import flags

from bottleneck import cli, report

_WORKDIR = flags.DEFINE_string("workdir", "runs/report", "Directory for the report and runs.")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Training runs at a time.")
_RERUN_CHANGED = flags.DEFINE_bool(
    "rerun_changed", False, "Rerun sweep points whose config changed since they ran (their old "
    "runs are set aside, nothing is deleted).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")


def main(argv):
  del argv
  path = report.build_report(_WORKDIR.value, parallel=_PARALLEL.value, data_dir=_DATA_DIR.value,
                             rerun_changed=_RERUN_CHANGED.value)
  print(f"report: {path}", file=sys.stderr)


def entry_point():
  cli.run(main)


if __name__ == "__main__":
  entry_point()
