r"""The 1x1 across families: what each family's 1x1s cut, save and do to accuracy, in one table
(`bottleneck.studies.families`).

  python -m experiments.benchmark --config=configs/benchmark.py:families --out=runs/bench_families
  python -m experiments.sweep --config=configs/ablation_families.py --workdir=runs/ablation_families
  python -m experiments.families --benchmark=runs/bench_families/benchmark.json \
      --sweep=runs/ablation_families --out=runs/FAMILIES.md

Without --benchmark or --sweep, those columns read "not measured"; the costs are computed.
"""

import os
import sys

from absl import flags

from bottleneck.analysis import markdown, results
from bottleneck.studies import families
from bottleneck.util import cli, workdir as wd

_BENCHMARK = flags.DEFINE_string(
    "benchmark", None, "A benchmark.json of experiments.benchmark "
    "with the families' blocks (configs/benchmark.py:families).")
_SWEEP = flags.DEFINE_string("sweep", None, "The workdir of configs/ablation_families.py's sweep.")
_OUT = flags.DEFINE_string("out", None, "Also write the table, with a header, to this markdown "
                           "file.")


def main(argv):
  del argv
  if _OUT.value:
    wd.ensure_writable(os.path.dirname(os.path.abspath(_OUT.value)), "--out's directory")
  benchmark, runs = families.load(_BENCHMARK.value, _SWEEP.value)
  text = families.markdown(families.table(benchmark, runs))
  failed = results.failures(_SWEEP.value) if _SWEEP.value else []
  if failed:  # a knob that diverged is a finding too: say which runs the table lacks
    text += (f"\n\nNot in the table: {len(failed)} failed run(s) of the sweep:\n"
             + "\n".join(f"- {f}" for f in failed))
  print(text)
  if _OUT.value:
    markdown.write_markdown(_OUT.value, "The 1x1 across families",
                            markdown.command("experiments.families", *sys.argv[1:]),
                            families.EXPLAINED + "\n\n" + text + "\n")


if __name__ == "__main__":
  cli.run(main)
