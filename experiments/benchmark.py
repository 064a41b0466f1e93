r"""Time naive vs reduced Inception blocks and networks on this device.

  python -m experiments.benchmark --config=configs/benchmark.py:smoke [--format=table|json|markdown] [--out=DIR]

Prints the rows, the naive/reduced ratios and a verdict; with --out, writes benchmark.json,
benchmark.md and time_vs_macs.png there.
"""

import json
import os

import pandas as pd
from absl import flags
from ml_collections import config_flags

from bottleneck import benchmark, cli, kernels, tables, workdir as wd

config_flags.DEFINE_config_file("config", None, "Benchmark config file.", lock_config=True)
_FORMAT = flags.DEFINE_enum("format", "table", ("table", "json", "markdown"), "Output format.")
_OUT = flags.DEFINE_string("out", None, "Directory for benchmark.json, .md and the plot.")

COLUMNS = ["name", "reduce", "batch", "dtype", *kernels.CHOICES, "macs", "compile_s", "fwd_ms",
           "fwd_bwd_ms", "fwd_bwd_ms_min", "fwd_bwd_ms_max", "images_per_s",
           "gflops_per_s", "peak_fraction", "memory_mb", "xla_over_analytic"]


def render(rows, ratios, verdict, fmt):
  if fmt == "json":
    return json.dumps({"rows": rows, "ratios": ratios, "verdict": verdict}, indent=1)
  errors = [f"FAILED {r['name']} ({'reduced' if r['reduce'] else 'naive'}, batch "
            f"{r['batch']}): {r['error']}" for r in benchmark.failed(rows)]
  rows = benchmark.timed(rows)
  frame = pd.DataFrame(rows)
  frame = frame[COLUMNS + [c for c in frame.columns if c.startswith(("torch_", "jax/torch"))]]
  frame["macs"] = frame["macs"] / 1e6
  frame = frame.rename(columns={"macs": "MACs (M, batch)", "peak_fraction": "achieved/peak",
                                "xla_over_analytic": "XLA/analytic FLOPs"})
  peaks = {(r["dtype"], r["peak_gflops_per_s"]) for r in rows}
  peak_line = "matmul peak measured in this run: " + ", ".join(
      f"{p:.1f} GFLOP/s ({d})" for d, p in sorted(peaks))
  return "\n\n".join([peak_line, tables.render(frame, fmt),
                      tables.render(pd.DataFrame(ratios), fmt), verdict] + errors) + "\n"


def main(argv):
  del argv
  c = flags.FLAGS.config
  rows = benchmark.run(list(c.cases), batches=list(c.batches), dtypes=list(c.dtypes),
                       paths=list(c.get("paths", ["auto"])), warmup=c.warmup, repeats=c.repeats,
                       torch_peer=c.get("torch_peer", False),
                       torch_compile=c.get("torch_compile", False))
  ratios = benchmark.central_ratios(rows)
  verdict = benchmark.verdict(ratios)
  print(render(rows, ratios, verdict, _FORMAT.value), end="")
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    wd.write_json(os.path.join(_OUT.value, "benchmark.json"),
                  {"rows": rows, "ratios": ratios, "verdict": verdict})
    wd.atomic_write_text(os.path.join(_OUT.value, "benchmark.md"),
                         render(rows, ratios, verdict, "markdown"))
    benchmark.plot_time_vs_macs(rows, os.path.join(_OUT.value, "time_vs_macs.png"))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
