r"""Run every point of a config's sweep (`get_sweep(arg)`), each in its own subdirectory.

  python -m experiments.sweep --config=configs/digits_inception.py --workdir=runs/digits_sweep
  python -m experiments.sweep --config=configs/digits_inception.py --workdir=DIR --parallel=2
  python -m experiments.sweep --config=configs/digits_inception.py --workdir=DIR --launcher=ray
  python -m experiments.sweep --config=configs/digits_inception.py --workdir=DIR --launcher=print

Points that differ only in their seed train as one program, the seeds stacked and vmapped
(--noseeds_together: one at a time; unset, the config's `seeds_together(arg)` decides where it
declares one). Rerunning skips finished points and resumes interrupted ones. Points that ran under another
config than the sweep's now are refused, naming them; --rerun_changed sets their old runs aside
(nothing is deleted) and runs them again. Exit status 1 if a point did not finish.
"""

import sys

from absl import flags

from bottleneck.train import sweep
from bottleneck.util import cli, config_files

_CONFIG = flags.DEFINE_string("config", None, "Config file, optionally with :variant.",
                              required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory.", required=True)
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Points run at a time (local launcher).")
_LAUNCHER = flags.DEFINE_enum("launcher", "local", sweep.LAUNCHERS,
                              "local processes, Ray tasks, or print the commands.")
_RERUN_CHANGED = flags.DEFINE_bool(
    "rerun_changed", False, "Rerun points whose config changed since they ran (their old runs "
    "are set aside under the point's .set_aside/).")
_SEEDS_TOGETHER = flags.DEFINE_bool(
    "seeds_together", None, "Train the points that differ only in their seed as one program "
    "(jax.vmap over the seeds; each keeps its own workdir and result). Unset: as the config "
    "declares (its seeds_together(arg)), else yes.")
_RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", None, "An existing Ray cluster (default: $RAY_ADDRESS if set, else a Ray of "
    "its own started here, even where a cluster runs).")


def main(argv):
  del argv
  module, config = config_files.load_config_file(_CONFIG.value)
  arg = _CONFIG.value.partition(":")[2]
  points = sweep.expand(module, config, _WORKDIR.value, arg)
  together = _SEEDS_TOGETHER.value
  summary = sweep.run(
      points, parallel=_PARALLEL.value, launcher=_LAUNCHER.value, ray_address=_RAY_ADDRESS.value,
      config_spec=_CONFIG.value, rerun_changed=_RERUN_CHANGED.value,
      seeds_together=sweep.seeds_together(module, arg) if together is None else together)
  if _LAUNCHER.value != "print":
    print(sweep.format_summary(summary, _WORKDIR.value), file=sys.stderr)
  if any(s != "done" and not s.startswith(("skipped", "printed")) for s in summary.values()):
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main)
