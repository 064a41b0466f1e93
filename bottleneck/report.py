"""The one-command report: complexity tables, the digits sweep, tables, plots, a finding.

`build_report(workdir)` writes `workdir/REPORT.md` with everything it measured, beside
`complexity/*.json`, `digits/<point>/` run directories and `*.png` plots. Rerunning reuses
finished work: complexity files that exist and sweep points that have a result.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import time

import numpy as np
from absl import logging

from bottleneck import complexity, env, plots, results, sweep, tables, workdir as wd

COMPLEXITY_MODELS = ("googlenet", "inception_v3", "inception_small")
SWEEP_CONFIG = "configs.digits_inception"
REPORT = "REPORT.md"


def _complexity(workdir: str, models) -> dict[str, list[dict]]:
  out = {}
  for i, model in enumerate(models):
    path = os.path.join(workdir, "complexity", f"{model}.json")
    if os.path.exists(path):
      try:
        out[model] = wd.read_json(path)
        if not (isinstance(out[model], list) and len(out[model]) == 2
                and all(isinstance(r, dict) and "total" in r for r in out[model])):
          raise wd.CorruptFile(f"{path} is incomplete: it is not a reduced and a naive report.")
        logging.info("[1/3] complexity of %s: reusing %s", model, path)
        continue
      except wd.CorruptFile as e:
        moved = wd.set_aside(workdir, [os.path.relpath(path, workdir)], str(e))
        logging.warning("%s Moved to %s; computing it again.", e, moved)
    logging.info("[1/3] complexity of %s (%d/%d), reduced and naive", model, i + 1,
                 len(models))
    out[model] = [complexity.analyze(model, reduce=r) for r in (True, False)]
    wd.write_json(path, out[model])
  return out


def environment() -> str:
  """The machine and library versions, for a report's header."""
  import flax, jax, optax, tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,multiple-imports
  return (f"{platform.platform()}; {env.device_description()}; Python "
          f"{platform.python_version()}; jax {jax.__version__}, flax {flax.__version__}, "
          f"optax {optax.__version__}, tensorflow-datasets {tfds.__version__}")


def finding(summary, ratio_row) -> str:
  """One or two sentences computed from the digits sweep's numbers."""
  by = summary.set_index("variant")
  acc = {v: (100 * by.loc[v, "eval_accuracy mean"], 100 * by.loc[v, "eval_accuracy std"])
         for v in ("reduced", "naive")}
  time_s = {v: by.loc[v, "train_time_s mean"] for v in ("reduced", "naive")}
  diff = acc["reduced"][0] - acc["naive"][0]
  spread = np.nanmax([acc["reduced"][1], acc["naive"][1]])
  within = "within" if np.isnan(spread) or abs(diff) <= spread else "beyond"
  # A time difference inside the seeds' spread is no saving and no loss.
  time_spread = np.nanmax([by.loc[v].get("train_time_s std", np.nan) for v in ("reduced", "naive")])
  time_diff = time_s["naive"] - time_s["reduced"]
  if np.isnan(time_diff):  # every run of a variant resumed without its metrics
    timing = ("The training time of one variant is unknown (its runs were resumed without "
              "their metrics), so no time is compared.")
  else:
    if not np.isnan(time_spread) and abs(time_diff) <= time_spread:
      verdict = ("the difference is within the seed-to-seed spread "
                 f"({time_spread:.1f} s): no measurable saving in time")
    else:
      verdict = (f"the saving in multiply-adds {'did' if time_diff > 0 else 'did not'} turn "
                 "into a saving in time")
    timing = (f"Training took {time_s['reduced']:.1f} s with reductions and "
              f"{time_s['naive']:.1f} s without on this machine: {verdict}.")
  return (
      f"On the digits, the 1x1 reductions cut parameters "
      f"{ratio_row['params naive/reduced']:.2f}x and multiply-adds "
      f"{ratio_row['MACs naive/reduced']:.2f}x; test accuracy was {acc['reduced'][0]:.2f}% "
      f"with them and {acc['naive'][0]:.2f}% without (n = {int(by.loc['reduced', 'n'])} and "
      f"{int(by.loc['naive', 'n'])} seeds), a difference of {diff:+.2f} points, {within} the "
      f"seed-to-seed spread ({spread:.2f}). {timing}")


def build_report(workdir: str, *, parallel: int = 1, data_dir: str | None = None,
                 sweep_config: str = SWEEP_CONFIG, models=COMPLEXITY_MODELS,
                 rerun_changed: bool = False) -> str:
  """Runs (or reuses) every part and writes REPORT.md; returns its path. The workdir is
  locked while it runs; sweep points whose config changed are refused unless
  `rerun_changed` (see `bottleneck.sweep.run`)."""
  with wd.lock(workdir):
    return _build_report(workdir, parallel, data_dir, sweep_config, models, rerun_changed)


def _build_report(workdir, parallel, data_dir, sweep_config, models, rerun_changed) -> str:
  start = time.time()
  cplx = _complexity(workdir, models)

  module = importlib.import_module(sweep_config)
  config = module.get_config()
  if data_dir:
    config.data_dir = data_dir
  sweep_dir = os.path.join(workdir, "digits")
  points = sweep.expand(module, config, sweep_dir)
  logging.info("[2/3] digits sweep: %d runs in %s (finished ones are reused)", len(points),
               sweep_dir)
  # One run per process and point, not the seeds as one program: the finding compares the
  # variants' training times, and a vmapped program's share of time favours some networks
  # over others (docs/training.md).
  summary_states = sweep.run(points, parallel=parallel, rerun_changed=rerun_changed,
                             seeds_together=False)
  failed = {k: v for k, v in summary_states.items()
            if v != "done" and not v.startswith("skipped")}

  logging.info("[3/3] tables, plots and REPORT.md")
  runs = results.collect(sweep_dir)
  summary = results.aggregate(runs)
  ratio = results.ratios(summary)
  acc_png = plots.accuracy_vs_cost(runs, os.path.join(workdir, "accuracy_vs_cost.png"))
  curves_png = plots.training_curves(sweep_dir, runs, os.path.join(workdir, "curves.png"))

  lines = [
      "# What the 1x1 reductions buy: report",
      "",
      f"Made by `python -m experiments.report --workdir={workdir}` on "
      f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, in {time.time() - start:.0f} s "
      "(reused work not counted again).",
      "",
      f"Machine: {environment()}.",
      "",
      "## Finding",
      "",
  ]
  if not ratio.empty:
    lines.append(finding(summary, ratio.iloc[0]))
  else:
    lines.append("The sweep did not finish both variants; see the failures below.")
  lines += ["", "## Cost: parameters and multiply-adds, reduced vs naive", "",
            "MACs are multiply-accumulates per image; FLOPs = 2 x MACs; XLA FLOPs are XLA's "
            "own count of the compiled forward (it skips taps on zero padding and counts "
            "element-wise work).", ""]
  for model, reps in cplx.items():
    lines += [f"### {model}", "", tables.render(tables.totals_frame(reps), "markdown"), ""]
  if "googlenet" in cplx:
    lines += ["Per block, GoogLeNet (Table 1 widths):", "",
              tables.render(tables.complexity_frame(cplx["googlenet"]), "markdown"), ""]
  lines += ["## Accuracy and time: small Inception on the digits", "",
            f"`{sweep_config.replace('.', '/')}.py`, both variants x seeds "
            f"({len(points)} runs in `{os.path.relpath(sweep_dir, workdir)}/`). Mean ± std over "
            "seeds; train time is wall time of the training steps (data included, compilation "
            "and evaluation not).", "",
            results.render(results.display(summary), "markdown"), ""]
  if not ratio.empty:
    lines += [results.render(ratio, "markdown"), ""]
  if failed:
    lines += ["Failed points:", ""] + [f"- `{k}`: {v}" for k, v in failed.items()] + [""]
  lines += [f"![accuracy against cost]({os.path.basename(acc_png)})", "",
            f"![training curves]({os.path.basename(curves_png)})", ""]
  path = os.path.join(workdir, REPORT)
  wd.atomic_write_text(path, "\n".join(lines))
  logging.info("report written to %s in %.0f s", path, time.time() - start)
  return path
