r"""Result table of every run below a directory: seeds aggregated, naive/reduced ratios.

  python -m experiments.make_table --workdir=runs/digits_sweep --format=markdown
  python -m experiments.make_table --workdir=runs/iso_macs --plot=runs/iso_macs/accuracy_vs_cost.png
"""

import os
import sys

from absl import flags

from bottleneck.analysis import results, tables
from bottleneck.util import cli, workdir as wd

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory searched for result.json files.",
                               required=True)
_FORMAT = flags.DEFINE_enum("format", "markdown", [f for f in tables.FORMATS if f != "json"],
                            "Output format.")
_GROUP_BY = flags.DEFINE_list(
    "group_by", None, "Columns whose values define a row (seeds are aggregated). "
    f"Default: {','.join(results.DEFAULT_GROUP_BY)} and every "
    f"ablation knob ({', '.join(results.KNOBS)}) that varies.")

_PLOT = flags.DEFINE_string(
    "plot", None, "Also draw accuracy against MACs and parameters, one "
    "curve per family (naive, reduced, per activation), to this PNG.")


def main(argv):
  del argv
  if _PLOT.value:
    wd.ensure_writable(os.path.dirname(os.path.abspath(_PLOT.value)), "--plot's directory")
  print(results.make_table(_WORKDIR.value, _FORMAT.value, _GROUP_BY.value), end="")
  if _PLOT.value:
    from bottleneck.analysis import plots
    plots.accuracy_vs_cost(results.collect(_WORKDIR.value), _PLOT.value)
    print(f"plot: {_PLOT.value}", file=sys.stderr)


if __name__ == "__main__":
  cli.run(main)
