r"""Memory and the roofline on this device: bandwidth, peak, blocks and convs placed under the
roofs, fragmentation, and training memory naive against reduced.

  python -m experiments.roofline --config=configs/roofline.py:smoke [--format=table|json|markdown] [--out=DIR]

Prints the findings and the tables; with --out, writes roofline.json, ROOFLINE.md and
roofline.png there.
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from bottleneck.analysis import markdown, plots, tables
from bottleneck.measure import roofline
from bottleneck.util import cli, workdir as wd

config_flags.DEFINE_config_file("config", None, "Roofline config file.", lock_config=True)
_FORMAT = flags.DEFINE_enum("format", "table", ("table", "json", "markdown"), "Output format.")
_OUT = flags.DEFINE_string("out", None, "Directory for roofline.json, ROOFLINE.md, the plot.")


def main(argv):
  del argv
  c = flags.FLAGS.config
  if _OUT.value:
    wd.ensure_writable(_OUT.value, "--out")  # before the timings, not after them
  for name, size in c.memory_models:  # a bad model or budget: an error now, not after timing
    roofline.check_train_memory(name, reduce=True, image_size=size, batch=c.memory_batch,
                                budget_gb=c.budget_gb)
  result = roofline.run(list(c.blocks), conv_blocks=list(c.conv_blocks),
                        fragment_parts=list(c.fragments), fragment_shape=tuple(c.fragment_shape),
                        batch=c.batch, dtype=c.dtype, warmup=c.warmup, repeats=c.repeats,
                        bandwidth_elements=c.bandwidth_elements)
  memory = [
      roofline.train_memory(name, reduce=r, image_size=size, batch=c.memory_batch,
                            budget_gb=c.budget_gb, xla=c.memory_xla)
      for name, size in c.memory_models
      for r in (False, True)
  ]
  findings = roofline.findings(result, memory)
  print(tables.roofline_results(result, memory, findings, _FORMAT.value), end="")
  if _OUT.value:
    wd.write_json(os.path.join(_OUT.value, "roofline.json"),
                  {**result, "memory": memory, "findings": findings})
    markdown.write_markdown(os.path.join(_OUT.value, "ROOFLINE.md"),
                            "Memory and the roofline, on this machine",
                            markdown.command("experiments.roofline", *sys.argv[1:]),
                            tables.roofline_results(result, memory, findings, "markdown"))
    plots.roofline(result, os.path.join(_OUT.value, "roofline.png"))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
