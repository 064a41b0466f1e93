"""Result tables: every `result.json` below a directory, seeds aggregated, naive/reduced ratios.

Frames are pandas DataFrames; rendering goes through `bottleneck.tables.render` (tabulate).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from absl import logging

from bottleneck import tables, workdir as wd
from bottleneck.validation import ConfigError

FORMATS = ("markdown", "csv", "latex", "table")
COST = ["params", "macs", "flops_xla"]
MEASURED = ["eval_accuracy", "train_time_s", "examples_per_s"]
DEFAULT_GROUP_BY = ("model", "dataset", "variant")


def collect(directory: str) -> pd.DataFrame:
  """One row per `result.json` below `directory` (any depth; runs set aside under hidden
  directories are not counted), with its run directory. An unreadable or incomplete one is
  named in a warning and left out."""
  paths = wd.find_files(directory, wd.RESULT)
  if not paths:
    raise ConfigError(f"no {wd.RESULT} below {directory}: run a training or a sweep first.")
  rows = []
  for path in paths:
    try:
      r = wd.read_json(path, required=wd.RESULT_KEYS)
    except wd.CorruptFile as e:
      logging.warning("left out of the table: %s Rerun its training or sweep to recompute it.",
                      e)
      continue
    rows.append({"model": r["model"], "dataset": r["dataset"],
                 "variant": "reduced" if r["reduce"] else "naive", "seed": r["seed"],
                 **{k: r.get(k) for k in COST + MEASURED + ["compile_time_s", "device"]},
                 "run": os.path.relpath(os.path.dirname(path), directory)})
  if not rows:
    raise ConfigError(f"no readable {wd.RESULT} below {directory}: rerun its trainings.")
  frame = pd.DataFrame(rows)
  for col in COST + MEASURED:  # null (unknown) becomes NaN, never 0
    frame[col] = pd.to_numeric(frame[col], errors="coerce")
  return frame


def aggregate(runs: pd.DataFrame, group_by=DEFAULT_GROUP_BY) -> pd.DataFrame:
  """Per group: the cost columns (equal across seeds) and mean, std and n of measured ones."""
  group_by = list(group_by)
  missing = [g for g in group_by if g not in runs.columns]
  if missing:
    raise ConfigError(f"--group_by: unknown column(s) {missing}; valid: "
                      f"{', '.join(runs.columns)}.")
  grouped = runs.groupby(group_by, sort=True)
  out = grouped[COST].first()
  for col in MEASURED:
    out[f"{col} mean"] = grouped[col].mean()
    out[f"{col} std"] = grouped[col].std(ddof=1)  # NaN for a single seed
  out["n"] = grouped.size()
  return out.reset_index()


def ratios(summary: pd.DataFrame) -> pd.DataFrame:
  """naive / reduced per (model, dataset): params, MACs, train time; accuracy difference."""
  if "variant" not in summary.columns:
    return pd.DataFrame()
  keys = [c for c in ("model", "dataset") if c in summary.columns]
  wide = summary.pivot_table(index=keys, columns="variant",
                             values=["params", "macs", "train_time_s mean",
                                     "eval_accuracy mean"],
                             aggfunc="first", dropna=False)  # keep unknown (NaN) times
  if "naive" not in wide.columns.get_level_values(1) or \
      "reduced" not in wide.columns.get_level_values(1):
    return pd.DataFrame()
  out = pd.DataFrame(index=wide.index)
  out["params naive/reduced"] = wide["params"]["naive"] / wide["params"]["reduced"]
  out["MACs naive/reduced"] = wide["macs"]["naive"] / wide["macs"]["reduced"]
  out["train time naive/reduced"] = (wide["train_time_s mean"]["naive"]
                                     / wide["train_time_s mean"]["reduced"])
  out["accuracy naive - reduced (points)"] = 100 * (wide["eval_accuracy mean"]["naive"]
                                                    - wide["eval_accuracy mean"]["reduced"])
  return out.reset_index().dropna(how="all", axis=1)


def display(summary: pd.DataFrame) -> pd.DataFrame:
  """The summary with readable units: accuracy in %, MACs in M, mean +- std columns."""
  out = summary.drop(columns=[c for c in summary.columns if c.endswith((" mean", " std"))])
  out = out.rename(columns={"macs": "MACs (M)", "flops_xla": "XLA FLOPs (M)"})
  out["MACs (M)"] = summary["macs"] / 1e6
  out["XLA FLOPs (M)"] = summary["flops_xla"] / 1e6
  def fmt(mean, std, scale=1.0, digits=2):  # a string, so that tabulate keeps the digits
    if mean is None or np.isnan(mean):
      return "unknown"  # e.g. the training time of a run resumed without its metrics
    std = "–" if np.isnan(std) else f"{std * scale:.{digits}f}"  # one seed: no spread
    return f"{mean * scale:.{digits}f} ± {std}"

  out["accuracy (%)"] = [fmt(m, s, 100) for m, s in zip(summary["eval_accuracy mean"],
                                                         summary["eval_accuracy std"])]
  out["train time (s)"] = [fmt(m, s, 1, 1) for m, s in zip(summary["train_time_s mean"],
                                                            summary["train_time_s std"])]
  out["examples/s"] = [fmt(m, s, 1, 0) for m, s in zip(summary["examples_per_s mean"],
                                                       summary["examples_per_s std"])]
  return out


def render(frame: pd.DataFrame, fmt: str) -> str:
  if fmt == "latex":
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_markdown(index=False, tablefmt="latex_booktabs", floatfmt=".3g",
                             missingval="")
  return tables.render(frame, fmt)


def make_table(directory: str, fmt: str = "markdown", group_by=DEFAULT_GROUP_BY) -> str:
  """The whole `experiments.make_table` output."""
  summary = aggregate(collect(directory), group_by)
  parts = [render(display(summary), fmt)]
  r = ratios(summary)
  if not r.empty:
    parts.append(render(r, fmt))
  return "\n\n".join(parts) + "\n"
