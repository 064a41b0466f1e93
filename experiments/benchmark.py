r"""Time naive vs reduced Inception blocks and networks on this device.

  python -m experiments.benchmark --config=configs/benchmark.py:smoke [--format=table|json|markdown] [--out=DIR]

Prints the rows, the naive/reduced ratios and a verdict; with --out, writes benchmark.json,
benchmark.md and time_vs_macs.png there at the end, and each row to rows.jsonl as soon as it is
timed (a run stopped part way keeps the rows it timed there).
"""

import contextlib
import os
import sys

from absl import flags
from ml_collections import config_flags

from bottleneck.analysis import markdown, plots, tables
from bottleneck.measure import benchmark
from bottleneck.util import cli, env, workdir as wd

config_flags.DEFINE_config_file("config", None, "Benchmark config file.", lock_config=True)
_FORMAT = flags.DEFINE_enum("format", "table", ("table", "json", "markdown"), "Output format.")
_OUT = flags.DEFINE_string("out", None, "Directory for benchmark.json, .md and the plot.")


def main(argv):
  del argv
  # --out is checked before the timings, not after them, and held: a second run into it at
  # the same time is refused, naming this one (their rows.jsonl lines would interleave).
  with wd.lock(_OUT.value, "--out") if _OUT.value else contextlib.nullcontext():
    _run(flags.FLAGS.config)


def _run(c):
  writer = None
  if _OUT.value:
    rows_path = os.path.join(_OUT.value, "rows.jsonl")
    wd.truncate_jsonl(rows_path, [])  # this run's rows only
    writer = wd.JsonlWriter(rows_path)
  try:
    rows = benchmark.run(list(c.cases), batches=list(c.batches), dtypes=list(c.dtypes),
                         paths=list(c.get("paths", ["auto"])), warmup=c.warmup, repeats=c.repeats,
                         torch_peer=c.get("torch_peer",
                                          False), torch_compile=c.get("torch_compile", False),
                         ratios=list(c.get("ratios", [None])),
                         on_row=None if writer is None else writer.write)
  except KeyboardInterrupt:  # not a training run: there is no checkpoint to resume from
    kept = (f"the rows timed so far are in {rows_path}" if writer else
            "nothing was written (with --out=DIR each row is kept as soon as it is timed)")
    raise KeyboardInterrupt(f"interrupted: {kept}.") from None
  finally:
    if writer is not None:
      writer.close()
  ratios = benchmark.central_ratios(rows)
  verdict = benchmark.verdict(ratios)
  print(tables.benchmark_results(rows, ratios, verdict, _FORMAT.value), end="")
  if _OUT.value:
    wd.write_json(os.path.join(_OUT.value, "benchmark.json"),
                  {"rows": rows, "ratios": ratios, "verdict": verdict})
    markdown.write_markdown(os.path.join(_OUT.value, "benchmark.md"),
                            "Benchmark: naive against reduced, on this machine",
                            markdown.command("experiments.benchmark", *sys.argv[1:]),
                            tables.benchmark_results(rows, ratios, verdict, "markdown"))
    plots.time_vs_macs(benchmark.timed(rows), env.device_description(),
                       os.path.join(_OUT.value, "time_vs_macs.png"))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
