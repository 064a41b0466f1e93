"""Result tables: every `result.json` below a directory, seeds aggregated, naive/reduced ratios.

Frames are pandas DataFrames; rendering goes through `bottleneck.analysis.tables.render` (tabulate).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
from absl import logging

from bottleneck.analysis import intervals, tables
from bottleneck.measure import benchmark
from bottleneck.nn import blocks
from bottleneck.train import records
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError

# The columns of a comparison that other modules read, by name (each name is also its heading).
DIFFERENCE = "accuracy naive - reduced (points)"  # `ratios`: naive minus reduced
PAIRED_DIFFERENCE = "difference (points)"  # `paired_accuracy`: the first minus the second
INTERVAL = "95% interval (points)"  # its 95% interval, as text
COVERS = "interval covers"  # what the interval counts: the seeds, or the seeds and the test set
MACS_RATIO = benchmark.MACS_RATIO

COST = ["params", "macs", "flops_xla"]
MEASURED = ["eval_accuracy", "train_time_s", "examples_per_s"]
DEFAULT_GROUP_BY = ("model", "dataset", "variant")
# What an ablation varies (from each result's config): the reductions' ratio, activation and
# places (reduced runs only; "–" on naive ones), the matched budget (`match_macs`, ...) and
# SqueezeNet's 3x3 share of its expand (`pct3x3`, both variants; "–" where not configured).
# Rows are grouped by every one of them that varies, so that no table averages over them.
# "config": the other config fields in which runs of one row would differ (learning rate,
# steps, ...), named by `_label_configs`; "–" when every run agrees with its row's others.
KNOBS = ("ratio", "activation", "places", "budget", "pct3x3", "config")
NOT_APPLICABLE = "–"
# Config fields that are not part of "the config" a row stands for: the seed and the columns
# above (model, dataset, variant, and the fields the knobs show), and what does not change what
# a run computes (where its data lie, how often it logs and checkpoints).
_NOT_CONFIG = ("seed", "model", "dataset", "reduce", "match_macs", "match_params",
               "model_kwargs.reduction_ratio", "model_kwargs.reduction_activation",
               "model_kwargs.reduction_places", "model_kwargs.pct3x3", *records.NOT_COMPARED,
               "log_every_steps", "checkpoint_every_steps", "keep_checkpoints")


def knobs(result: dict) -> dict:
  """The ablation knobs of one result.json, as strings, and the width its model was built at
  (the matched width, the configured one, or None for the model's own)."""
  kwargs = (result.get("config") or {}).get("model_kwargs") or {}
  match = result.get("match")
  reduced = bool(result["reduce"])
  places = kwargs.get("reduction_places")
  out = {
      "ratio": (str(kwargs["reduction_ratio"]) if kwargs.get("reduction_ratio") is not None else
                "published") if reduced else NOT_APPLICABLE,
      "activation": ("linear" if kwargs.get("reduction_activation") is False else "relu")
                    if reduced else NOT_APPLICABLE,
      "places": ("all" if places is None else places or "none") if reduced else NOT_APPLICABLE,
      "budget": f"{match['metric']} {match['budget']:.4g}" if match else NOT_APPLICABLE,
      "pct3x3": str(kwargs["pct3x3"]) if kwargs.get("pct3x3") is not None else NOT_APPLICABLE,
  }
  out["width"] = match["width"] if match else kwargs.get("width")
  return out


def collect(directory: str) -> pd.DataFrame:
  """One row per run below `directory` (any depth; runs set aside under hidden directories are
  not counted), with its run directory. Left out, each named in a warning: a `result.json`
  that is unreadable or incomplete, or whose accuracy contradicts its predictions file; a
  second copy of a run (the same config and seed). Runs whose configs differ in more than
  the seed and the knobs get a "config" column naming the difference (`_label_configs`), so
  that no table averages over it."""
  paths = wd.find_files(directory, wd.RESULT)
  if not paths:
    failed = failures(directory)
    raise ConfigError(f"no {wd.RESULT} below {directory}: "
                      + (f"{len(failed)} run(s) failed, the first {failed[0]}"
                         if failed else "run a training or a sweep first."))
  rows = []
  for path in paths:
    try:
      r = wd.read_result(path)
      predictions = _checked_predictions(path, r["eval_accuracy"])
    except wd.CorruptFile as e:
      logging.warning("left out of the table: %s Rerun its training or sweep to recompute it.", e)
      continue
    rows.append({
        "model": r["model"], "dataset": r["dataset"], "variant": blocks.variant(r["reduce"]),
        **knobs(r), "seed": r["seed"], **{
            k: r.get(k) for k in COST + MEASURED + ["compile_time_s", "device", "num_classes"]
        }, "run": os.path.relpath(os.path.dirname(path),
                                  directory), "predictions": predictions, "_config": r.get("config")
    })
  if not rows:
    raise ConfigError(f"no readable {wd.RESULT} below {directory}: rerun its trainings.")
  frame = _without_copies(_label_configs(pd.DataFrame(rows), directory))
  for col in COST + MEASURED + ["width"]:  # null (unknown) becomes NaN, never 0
    frame[col] = pd.to_numeric(frame[col], errors="coerce")
  return frame


def _checked_predictions(result_path: str, accuracy: float) -> str | None:
  """The run's predictions file, after checking that its accuracy is the result's (the
  difference of a table and its interval come from these two files): CorruptFile if not.
  None when there is none, or it is unreadable (said; the intervals then count seeds only)."""
  path = _predictions_path(os.path.dirname(result_path))
  read = path and _read_predictions(path, "The intervals of its run count the seeds only.")
  if not read:
    return None
  predicted, label = read
  right = int(np.sum(predicted == label))
  # An accuracy written from these predictions is right/n up to float rounding (~1e-7), far
  # below half a step of 1/n: a larger gap means the files are of different evaluations.
  if len(label) == 0 or abs(accuracy - right / len(label)) > 0.5 / len(label):
    raise wd.CorruptFile(
        f"{result_path} says eval_accuracy={accuracy!r}, but its {wd.PREDICTIONS} has "
        f"{right} of {len(label)} examples right ({right / max(len(label), 1):.4f}): the two "
        "files are not of the same evaluation.")
  return path


def _flat(d: dict, prefix: str = "") -> dict:
  """A config record's fields as {"optimizer.learning_rate": "0.1", ...} (values as JSON)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = json.dumps(v, sort_keys=True)
  return out


def _differing(configs: pd.Series, groups) -> tuple[list[str], bool]:
  """The config fields (less `_NOT_CONFIG`) whose values differ between runs of one group, and
  whether a group mixes runs with a recorded config and runs without."""
  fields, mixed = set(), False
  for _, members in configs.groupby(groups, sort=False, dropna=False):
    known = [c for c in members if c is not None]
    mixed |= 0 < len(known) < len(members)
    for key in set().union(*known) if known else ():
      if key not in _NOT_CONFIG and len({c.get(key) for c in known}) > 1:
        fields.add(key)
  return sorted(fields), mixed


def _label_configs(frame: pd.DataFrame, directory: str) -> pd.DataFrame:
  """Adds the "config" column: for runs that differ in config fields other than the seed and
  the knobs (a run of another config trained into a sweep's directory, a sweep over the
  learning rate), those fields' values ("num_train_steps=8"); "–" when no such field differs.
  A field a record lacks has the value its run computed with (`records.differences`'
  rule); a run whose result has no config is "unrecorded" where others have one."""
  groups = [frame[c] for c in DEFAULT_GROUP_BY + KNOBS if c in frame]
  configs = frame.pop("_config").map(lambda c: _flat(c) if isinstance(c, dict) else None)
  frame["config"] = NOT_APPLICABLE
  fields, mixed = _differing(configs, groups)
  if fields:
    defaults = _flat(records.record_defaults())
    configs = configs.map(lambda c: None if c is None else {**defaults, **c})
    fields, mixed = _differing(configs, groups)
  if not fields and not mixed:
    return frame
  frame["config"] = [
      "unrecorded" if c is None else ", ".join(f"{k}={c.get(k, 'null')}"
                                               for k in fields) or "recorded"
      for c in configs
  ]
  counts = frame["config"].value_counts()
  fewest = frame[frame["config"] == counts.index[-1]]["run"].tolist()
  logging.warning(
      "the runs below %s differ in %s as well as in their seed and the knobs: each config is "
      "a row of its own (column 'config'); e.g. %s has %s.", directory, ", ".join(fields)
      or "whether their result records its config", fewest[0], counts.index[-1])
  return frame


def _without_copies(frame: pd.DataFrame) -> pd.DataFrame:
  """The runs, each (config, seed) once: of several runs with the same config and seed (a copy
  of a run's directory, a rerun elsewhere), the first (by path) stays if they agree on the
  accuracy, none if they do not (which one belongs cannot be told); the rest are named."""
  key = [c for c in DEFAULT_GROUP_BY + KNOBS if c in frame] + ["seed"]
  keep = pd.Series(True, index=frame.index)
  for _, same in frame[frame.duplicated(key, keep=False)].groupby(key, sort=False):
    runs = ", ".join(same["run"])
    if same["eval_accuracy"].nunique() == 1:
      keep[same.index[1:]] = False
      logging.warning("%s are the same run (the same config and seed %s): counted once, as %s.",
                      runs, same["seed"].iloc[0], same["run"].iloc[0])
    else:
      keep[same.index] = False
      logging.warning(
          "%s are the same config and seed %s with different accuracies (%s): all left out of "
          "the table; keep the one that belongs and remove the others.", runs, same["seed"].iloc[0],
          ", ".join(f"{a:.4f}" for a in same["eval_accuracy"]))
  return frame[keep].reset_index(drop=True)


def _read_predictions(path: str, consequence: str) -> tuple[np.ndarray, np.ndarray] | None:
  """`workdir.read_predictions`, or None when the file is unreadable (said, with `consequence`)."""
  try:
    return wd.read_predictions(path)
  except wd.CorruptFile as e:
    logging.warning("%s %s", e, consequence)
    return None


def _predictions_path(run_dir: str) -> str | None:
  path = os.path.join(run_dir, wd.PREDICTIONS)
  return path if os.path.exists(path) else None


def not_learned(summary: pd.DataFrame) -> pd.DataFrame:
  """The groups whose mean accuracy is below twice chance (1 / the number of classes, which
  results record; none for older ones): their runs did not learn, and no comparison with them
  says anything about the networks."""
  if "num_classes" not in summary or "eval_accuracy mean" not in summary:
    return summary.iloc[:0]
  return summary[summary["eval_accuracy mean"] < 2.0 / summary["num_classes"]]


def default_group_by(runs: pd.DataFrame) -> list[str]:
  """DEFAULT_GROUP_BY and every knob whose value differs between the runs it applies to."""
  return list(DEFAULT_GROUP_BY) + [
      k for k in KNOBS if k in runs and runs[k][runs[k] != NOT_APPLICABLE].nunique() > 1
  ]


def aggregate(runs: pd.DataFrame, group_by=None) -> pd.DataFrame:
  """Per group (default: `default_group_by`): the cost columns and width (equal across seeds)
  and mean, std and n of the measured ones."""
  group_by = default_group_by(runs) if group_by is None else list(group_by)
  missing = [g for g in group_by if g not in runs.columns]
  if missing:
    raise ConfigError(f"--group_by: unknown column(s) {missing}; valid: "
                      f"{', '.join(runs.columns)}.")
  grouped = runs.groupby(group_by, sort=True, dropna=False)
  out = grouped[COST + (["width"] if "width" in runs and runs["width"].notna().any() else []) +
                (["num_classes"]
                 if "num_classes" in runs and runs["num_classes"].notna().any() else [])].first()
  for col in MEASURED:
    out[f"{col} mean"] = grouped[col].mean()
    out[f"{col} std"] = grouped[col].std(ddof=1)  # NaN for a single seed
  out["n"] = grouped.size()
  return out.reset_index()


def verdict(interval, first: str = "naive", second: str = "reduced") -> str:
  """`intervals.verdict`: which is more accurate, or "within noise" (module doc)."""
  return intervals.verdict(interval, first, second)


def _matching(runs: pd.DataFrame, where: dict) -> pd.DataFrame:
  """The runs whose columns equal `where`, indexed by seed."""
  mask = np.logical_and.reduce([runs[c] == v for c, v in where.items()])
  return runs[mask].set_index("seed")


def _outcomes(paths) -> np.ndarray | None:
  """(runs, examples) booleans, right or wrong, from the runs' predictions files; None when
  one is missing or unreadable, or the runs were not evaluated on the same examples."""
  rows, labels = [], None
  for path in paths:
    read = isinstance(path, str) and _read_predictions(path, "The interval counts the seeds only.")
    if not read:
      return None
    predicted, label = read
    if labels is not None and not np.array_equal(label, labels):
      logging.warning(
          "%s holds other examples than the runs it is compared with; the interval "
          "counts the seeds only.", path)
      return None
    labels = label
    rows.append(predicted == label)
  return np.stack(rows)


def difference(first: pd.DataFrame, second: pd.DataFrame) -> dict:
  """Accuracy of `first`'s runs minus `second`'s, row i paired with row i (the same seed, or
  two independent seeds): the number of pairs, the mean difference (points) and its 95%
  interval (`bottleneck.analysis.intervals`), over the seeds and the test set where every run
  saved its predictions, over the seeds alone otherwise ("interval covers" says which)."""
  diffs = 100 * (first["eval_accuracy"].to_numpy(float) - second["eval_accuracy"].to_numpy(float))
  interval = None
  if len(diffs) >= 2 and "predictions" in first and "predictions" in second:
    # Every run of both sides scored on the same examples, or no per-example pairing.
    both = _outcomes(list(first["predictions"]) + list(second["predictions"]))
    if both is not None:
      interval = intervals.difference_interval(both[:len(diffs)], both[len(diffs):])
  if interval is None:
    interval = intervals.seed_interval(diffs)
  return {
      "paired seeds": len(diffs),
      PAIRED_DIFFERENCE: float(diffs.mean()) if len(diffs) else float("nan"),
      INTERVAL: interval and interval.text(), COVERS: interval and interval.covers,
      "interval": interval
  }


_NOT_PAIRED = {
    "paired seeds": 0, PAIRED_DIFFERENCE: float("nan"), INTERVAL: None, COVERS: None,
    "interval": None
}


def paired_accuracy(runs: pd.DataFrame, first: dict, second: dict) -> dict:
  """Accuracy of the runs matching `first` minus those matching `second` (column filters), on
  the seeds both ran (`difference`). Nothing is paired where a filter matches several runs of
  one seed."""
  sides = [_matching(runs, first), _matching(runs, second)]
  for where, side in zip((first, second), sides):
    if side.index.duplicated().any():  # runs that differ in a column the caller did not name
      logging.warning(
          "not paired: several runs per seed where %s; group by the column that "
          "tells them apart", where)
      return dict(_NOT_PAIRED)
  seeds = [
      s for s in sides[0].index
      if s in sides[1].index and not np.isnan(sides[0].loc[s, "eval_accuracy"])
      and not np.isnan(sides[1].loc[s, "eval_accuracy"])
  ]
  return difference(sides[0].loc[seeds], sides[1].loc[seeds])


def a_a(runs: pd.DataFrame, where: dict, seeds_a, seeds_b) -> dict:
  """The A/A check: the runs matching `where` with seeds `seeds_a` against the same config's
  seeds `seeds_b` (disjoint; the i-th of each paired, as independent seeds). With no true
  difference, its verdict ("verdict"; None where it has no interval) must be "within noise"."""
  side = _matching(runs, where)
  if side.index.duplicated().any() or set(seeds_a) & set(seeds_b):
    return {**_NOT_PAIRED, "verdict": None}
  a = [s for s in seeds_a if s in side.index]
  b = [s for s in seeds_b if s in side.index]
  k = min(len(a), len(b))
  out = difference(side.loc[a[:k]], side.loc[b[:k]])
  names = ("seeds " + ",".join(str(s) for s in seeds) for seeds in (seeds_a, seeds_b))
  out["verdict"] = None if out["interval"] is None else verdict(out["interval"], *names)
  return out


def compare(runs: pd.DataFrame, column: str, first, second, by=()) -> pd.DataFrame:
  """`first` against `second` values of `column`, for each combination of the `by` columns:
  accuracy mean +- std of each, their paired difference with its interval and verdict
  (`paired_accuracy`). E.g. compare(runs, "activation", "relu", "linear", by=["ratio"])."""
  rows = []
  keys = runs[list(by)].drop_duplicates().sort_values(list(by)) if by else pd.DataFrame([{}])
  for _, key in keys.iterrows():
    key = key.to_dict()
    acc = {v: _matching(runs, {**key, column: v})["eval_accuracy"] for v in (first, second)}
    if acc[first].empty or acc[second].empty:
      continue
    paired = paired_accuracy(runs, {**key, column: first}, {**key, column: second})
    spread = {f"{v} (%)": _mean_std(a) for v, a in acc.items()}
    rest = {k: v for k, v in paired.items() if k != "interval"}
    rows.append(
        {**key, **spread, **rest, "verdict": verdict(paired["interval"], str(first), str(second))})
  return pd.DataFrame(rows)


def _mean_std(accuracies: pd.Series) -> str:
  """"mean ± std" in percent ("–" for the std of one value)."""
  a = accuracies
  return f"{100 * a.mean():.2f} ± " + ("–" if len(a) < 2 else f"{100 * a.std(ddof=1):.2f}")


def ratios(summary: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
  """naive / reduced: params, MACs, train time; accuracy difference. Each reduced row is
  paired with the naive row that shares its other group columns (model, dataset, budget...;
  the reductions' own knobs do not apply to naive runs). With `runs`, the difference also gets
  a 95% interval over the seeds both ran and the test set (`difference`) and a verdict:
  "within noise" when the interval holds 0."""
  if "variant" not in summary.columns:
    return pd.DataFrame()
  keys = [
      c for c in summary.columns
      if c in DEFAULT_GROUP_BY + KNOBS and c not in ("variant", "ratio", "activation", "places")
  ]
  own = [c for c in ("ratio", "activation", "places") if c in summary.columns]
  naive = summary[summary["variant"] == "naive"]
  reduced = summary[summary["variant"] == "reduced"]
  if naive.empty or reduced.empty:
    return pd.DataFrame()
  if naive.duplicated(keys).any():  # naive runs that differ in a column not grouped by
    return pd.DataFrame()
  pairs = reduced.merge(naive, on=keys, suffixes=("", " naive"))
  if pairs.empty:
    return pd.DataFrame()
  out = pairs[keys + own].copy()
  out["params naive/reduced"] = pairs["params naive"] / pairs["params"]
  out[MACS_RATIO] = pairs["macs naive"] / pairs["macs"]
  out["train time naive/reduced"] = (pairs["train_time_s mean naive"] / pairs["train_time_s mean"])
  out[DIFFERENCE] = 100 * (pairs["eval_accuracy mean naive"] - pairs["eval_accuracy mean"])
  if runs is not None:
    paired = [
        paired_accuracy(runs, {"variant": "naive", **{c: row[c] for c in keys}},
                        {"variant": "reduced", **{c: row[c] for c in keys + own}
                        }) for _, row in pairs.iterrows()
    ]
    # The difference over the seeds both variants ran, as its interval is: with a seed's
    # result left out on one side, the means of all seeds would compare other seeds.
    out[DIFFERENCE] = [p[PAIRED_DIFFERENCE] for p in paired]
    out["paired seeds"] = [p["paired seeds"] for p in paired]
    out[INTERVAL] = [p[INTERVAL] for p in paired]
    out[COVERS] = [p[COVERS] for p in paired]
    out["verdict"] = [verdict(p["interval"]) for p in paired]
  return out.dropna(how="all", axis=1)


def display(summary: pd.DataFrame) -> pd.DataFrame:
  """The summary with readable units: accuracy in %, MACs in M, mean +- std columns."""
  out = summary.drop(
      columns=[c for c in summary.columns if c.endswith((" mean", " std")) or c == "num_classes"])
  out = out.rename(columns={"macs": "MACs (M)", "flops_xla": "XLA FLOPs (M)"})
  out["MACs (M)"] = summary["macs"] / 1e6
  out["XLA FLOPs (M)"] = summary["flops_xla"] / 1e6

  def fmt(mean, std, scale=1.0, digits=2):  # a string, so that tabulate keeps the digits
    if mean is None or np.isnan(mean):
      return "unknown"  # e.g. the training time of a run resumed without its metrics
    std = "–" if np.isnan(std) else f"{std * scale:.{digits}f}"  # one seed: no spread
    return f"{mean * scale:.{digits}f} ± {std}"

  out["accuracy (%)"] = [
      fmt(m, s, 100) for m, s in zip(summary["eval_accuracy mean"], summary["eval_accuracy std"])
  ]
  out["train time (s)"] = [
      fmt(m, s, 1, 1) for m, s in zip(summary["train_time_s mean"], summary["train_time_s std"])
  ]
  out["examples/s"] = [
      fmt(m, s, 1, 0) for m, s in zip(summary["examples_per_s mean"], summary["examples_per_s std"])
  ]
  return out


def failures(directory: str) -> list[str]:
  """"run: error" for every sweep point below `directory` that failed (its `error.json`) and
  has no result: the runs a table is missing."""
  out = []
  for path in wd.find_files(directory, wd.ERROR):
    run = os.path.dirname(path)
    if os.path.exists(os.path.join(run, wd.RESULT)):
      continue
    try:
      error = str(wd.read_json(path, mapping=True).get("error", "unknown error"))
    except wd.CorruptFile as e:
      error = str(e)
    out.append(f"{os.path.relpath(run, directory)}: {error.splitlines()[0][:300]}")
  return sorted(out)


def make_table(directory: str, fmt: str = "markdown", group_by=None) -> str:
  """The whole `experiments.make_table` output, and the failed runs it leaves out."""
  runs = collect(directory)
  summary = aggregate(runs, group_by)
  parts = [tables.render(display(summary), fmt)]
  r = ratios(summary, runs)
  if not r.empty:
    parts.append(tables.render(r, fmt))
  failed = failures(directory)
  if failed and fmt != "csv":
    parts.append(f"Not in the table: {len(failed)} failed run(s) (their error.json):\n"
                 + "\n".join(f"- {f}" for f in failed))
  return "\n\n".join(parts) + "\n"
