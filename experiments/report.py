r"""The main job: what the 1x1 reductions cost (parameters, multiply-adds), what they save in
time on real block sizes, what they do to accuracy (the digits sweep, reduced vs naive, 3
seeds), and 1x1 = fully connected (a Dense-head classifier as a score map), in one report.

  python -m experiments.report --workdir=runs/report     (or the console script bottleneck-report)

Offline, on a CPU, in about 3 minutes; rerunning reuses finished work (refusing runs whose
config changed since, unless --rerun_changed). Writes DIR/REPORT.md.

With --study=ablation, the ablation study instead (bottleneck/studies/ablation.py): the iso-MACs,
ratio/activation and placement sweeps and the break-even benchmark, answered in
DIR/ABLATION.md:

  python -m experiments.report --study=ablation:quick --workdir=runs/ablation_quick --parallel=2   # 13 min, 2-core CPU
  python -m experiments.report --study=ablation:cluttered --workdir=runs/ablation --launcher=ray
"""

import importlib
import os
import sys

from absl import flags

from bottleneck.studies import registry, report
from bottleneck.util import cli
from bottleneck.util.errors import ConfigError
from configs import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for the report and runs (default "
    "runs/report; with --study=ablation:quick, runs/ablation_quick).")
_STUDY = flags.DEFINE_string(
    "study", None,
    "; ".join(f"{s.name}[:variant] writes {s.report} instead of the main report"
              for s in registry.by_name().values()) + f" (variants {', '.join(study.OPTIONS)}, "
    "combinable: fashion,quick or fashion_quick).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Training runs (units) at a time.")
_LAUNCHER = flags.DEFINE_enum("launcher", "local", ("local", "ray"),
                              "--study: local processes or Ray tasks.")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", None,
                                   "An existing Ray cluster (default: start a local Ray).")
_RERUN_CHANGED = flags.DEFINE_bool(
    "rerun_changed", False, "Rerun sweep points whose config changed since they ran (their old "
    "runs are set aside, nothing is deleted).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")


def main(argv):
  del argv
  if _STUDY.value is not None:  # "--study=" is refused (bottleneck.util.cli), never the report
    found = registry.find(_STUDY.value)
    chosen = importlib.import_module(found.module)
    variant = chosen.parse_study(_STUDY.value, study)
    workdir = _WORKDIR.value or default_workdir(variant, found.name)
    path = chosen.build(workdir, variant, study, parallel=_PARALLEL.value, launcher=_LAUNCHER.value,
                        ray_address=_RAY_ADDRESS.value, rerun_changed=_RERUN_CHANGED.value,
                        data_dir=_DATA_DIR.value)
  else:
    if _LAUNCHER.value != "local" or _RAY_ADDRESS.value:
      raise ConfigError("--launcher and --ray_address apply to --study only.")
    path = report.build_report(
        _WORKDIR.value or "runs/report", parallel=_PARALLEL.value, data_dir=_DATA_DIR.value,
        rerun_changed=_RERUN_CHANGED.value, sweep_config="configs.digits_inception",
        fc_config="configs.digits_fc_head", studies=tuple(
            (m.title, m.path, os.path.join(ROOT, m.doc), m.command) for m in registry.made()))
  print(f"report: {path}", file=sys.stderr)


def default_workdir(variant: str, name: str = "ablation") -> str:
  """Where study `name` writes when no --workdir is given: runs/ablation, runs/ablation_quick,
  runs/ablation_fashion_quick, ... (`variant` as the study's `parse_study` gives it)."""
  return os.path.join("runs", "_".join([name, *filter(None, variant.split(","))]))


def entry_point():
  cli.run(main)


if __name__ == "__main__":
  entry_point()
