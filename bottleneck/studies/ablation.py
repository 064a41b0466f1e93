"""The ablation study: what each part of the 1x1 bottleneck buys, in one command.

`build(workdir, variant)` runs (or reuses) the three ablation sweeps of `configs/` and the
break-even benchmark, and writes `workdir/ABLATION.md`, which answers each question with
numbers and uncertainty (95% intervals over the seeds and the test set,
`bottleneck.analysis.intervals`), or says that the data cannot tell the variants apart:

1. At equal compute, is the reduced network more accurate? (`configs/iso_macs.py`)
2. Does the ReLU after the 1x1 help? (`configs/ablation_ratio.py`: ReLU against linear)
3. How far can the reduction go? (the same sweep: each ratio against the naive network)
4. Which reduction matters? (`configs/ablation_placement.py`)
5. Where does the 1x1 stop paying in time on this device? (`configs/benchmark.py:ratio`)
6. Are the intervals honest? The A/A check: one config under two disjoint sets of seeds must
   come out "within noise" (`configs/iso_macs.py`, `configs/study.py`).

Beside it: one directory per sweep (each point a training workdir), `benchmark_ratio.json`,
and a plot per sweep. Rerunning reuses finished points and the benchmark's JSON.
"""

from __future__ import annotations

import json
import os
import time

import pandas as pd
from absl import logging

from bottleneck.analysis import markdown, results, tables
from bottleneck.train import sweep
from bottleneck.util import env, validation, workdir as wd
from bottleneck.util.errors import ConfigError, UserError

ABLATION = "ABLATION.md"
STUDY = "ablation"
SWEEPS = ("iso_macs", "ablation_ratio", "ablation_placement")
BENCHMARK = "benchmark_ratio.json"


def parse_study(spec: str, plan) -> str:
  """The variant of a `--study` value: "ablation" -> "", "ablation:cluttered,quick" (or
  "ablation:cluttered_quick", "ablation:quick,cluttered") -> "cluttered,quick"; ConfigError
  for another study or an unknown variant."""
  name, colon, variant = spec.partition(":")
  if colon and not variant.strip():
    raise ConfigError(f"--study={spec}: nothing after ':'; write --study={STUDY} for the "
                      f"default, or a variant ({STUDY}:quick, {STUDY}:cluttered,quick, ...).")
  if name != STUDY:
    raise ConfigError(f"unknown study {name!r}; valid: {STUDY} (with a variant: "
                      f"{STUDY}:quick, {STUDY}:cluttered, {STUDY}:cluttered,quick, ...).")
  try:
    chosen = plan.options(variant)
  except ValueError as e:
    raise ConfigError(f"--study={spec}: {e}") from None
  # One spelling per variant: the options set, by commas, the dataset before "quick"
  # ("quick_fashion" and "quick=true,fashion" too).
  return ",".join(sorted(chosen, key=lambda option: (option == "quick", option)))


def build(workdir: str, variant: str, plan, *, parallel: int = 1, launcher: str = "local",
          ray_address: str | None = None, rerun_changed: bool = False, data_dir: str | None = None,
          modules: dict[str, str] | None = None) -> str:
  """Runs (or reuses) every part and writes ABLATION.md (`write`); returns its path. The
  workdir is locked while it runs. `plan`: the study's configs (configs/study.py: its variants,
  seeds, sweeps and benchmark); `modules`: a config module for a sweep other than the plan's."""
  modules = {**plan.SWEEP_MODULES, **(modules or {})}
  names = plan.sweeps(variant)
  validation.positive_int(parallel, "parallel", "ablation")  # before anything is written
  with wd.lock(workdir):
    env.use_compilation_cache(os.path.join(workdir, ".jax_cache"))
    start = time.time()
    # Before hours of sweeps, not after.
    markdown.refuse_changed(workdir, BENCHMARK, benchmark_settings(plan), rerun_changed,
                            "configs/benchmark.py:ratio")
    for i, name in enumerate(names):
      logging.info("[%d/%d] sweep %s%s", i + 1,
                   len(names) + 1, name, f":{variant}" if variant else "")
      sweep.run_module(modules[name], os.path.join(workdir, name), variant, data_dir=data_dir,
                       parallel=parallel, launcher=launcher, ray_address=ray_address,
                       config_spec=f"configs/{name}.py" + (f":{variant}" if variant else ""),
                       rerun_changed=rerun_changed, seeds_together=plan.seeds_together(variant))
    logging.info("[%d/%d] break-even benchmark", len(names) + 1, len(names) + 1)
    _benchmark(workdir, plan)
    return write(workdir, variant, plan, start)


def benchmark_settings(plan) -> dict:
  """What the break-even benchmark measures (the plan's, configs/benchmark.py:ratio), as its
  JSON keeps it."""
  c = plan.benchmark_config()
  return json.loads(
      json.dumps({
          k: list(c[k]) if isinstance(c[k], (list, tuple)) else c[k]
          for k in ("cases", "batches", "dtypes", "warmup", "repeats", "ratios")
      }))


def _benchmark(workdir: str, plan) -> dict:
  """The break-even benchmark's rows (configs/benchmark.py:ratio), run once and kept with the
  settings it was run with (`markdown.refuse_changed` checks them first)."""
  from bottleneck.measure import benchmark

  def compute() -> dict:
    c = benchmark_settings(plan)
    rows = benchmark.run(list(c["cases"]), batches=c["batches"], dtypes=c["dtypes"],
                         warmup=c["warmup"], repeats=c["repeats"], ratios=c["ratios"])
    return {"rows": rows, "ratios": benchmark.central_ratios(rows)}

  return markdown.cached_json(workdir, BENCHMARK, compute, settings=benchmark_settings(plan),
                              valid=lambda d: "rows" in d and "ratios" in d,
                              what="break-even benchmark")


def write(workdir: str, variant: str, plan, start: float | None = None) -> str:
  """ABLATION.md from what `workdir` holds (the sweeps' results, the benchmark's JSON), with a
  figure per sweep; returns its path. `start`: when the study began, for its duration."""
  from bottleneck.analysis import plots
  bench = {"rows": [], "ratios": []}  # none yet: the section says "not measured"
  if os.path.exists(os.path.join(workdir, BENCHMARK)):
    try:
      bench = wd.read_json(os.path.join(workdir, BENCHMARK), ("rows", "ratios"))
    except wd.CorruptFile as e:
      logging.warning("%s Its section is left out; rerun the study to time it again.", e)
  runs = {}
  for name in plan.sweeps(variant):
    try:
      runs[name] = results.collect(os.path.join(workdir, name))
    except UserError as e:  # nothing finished: the section says so
      logging.warning("%s: %s", name, e)
  figures = {
      name: plots.accuracy_vs_cost(r, os.path.join(workdir, f"{name}.png"))
      for name, r in runs.items()
  }

  def section(parts, sweep_name=None) -> markdown.Section:
    """A question's section: its tables, then its sweep's figure and failed runs."""
    title, answer, body = parts
    body = [*body, ""]
    if sweep_name in figures:
      body += [
          f"![{sweep_name}: accuracy against cost]({os.path.basename(figures[sweep_name])})", ""
      ]
    failed = results.failures(os.path.join(workdir, sweep_name)) if sweep_name else []
    if failed:
      body += [f"Failed runs of `{sweep_name}` (not in the tables):", ""]
      body += [f"- {f}" for f in failed] + [""]
    return markdown.Section(title, body, answer)

  ratio, placement = _run_or_not(runs, variant, plan)
  sections = [
      section(
          _with_lines(
              _equal_compute(runs.get("iso_macs")),
              along_the_run(os.path.join(workdir, "iso_macs"), runs.get("iso_macs"), workdir,
                            "iso_macs")), "iso_macs"),
      section(
          _with_lines(
              _activation(runs.get("ablation_ratio")),
              along_the_run(os.path.join(workdir, "ablation_ratio"), runs.get("ablation_ratio"),
                            workdir, "ablation_ratio_activation", "ratio",
                            ("activation", "relu", "linear")))),
      section(ratio, "ablation_ratio"),
      section(placement, "ablation_placement"),
      section(_time(bench)),
      section(_a_a(runs.get("iso_macs"), variant, plan)),
  ]
  made_by = markdown.command("experiments.report", f"--study={STUDY}" +
                             (f":{variant}" if variant else ""), f"--workdir={workdir}")
  done = sum(len(r) for r in runs.values())
  n_failed = sum(
      len(results.failures(os.path.join(workdir, name)))
      for name in SWEEPS
      if os.path.isdir(os.path.join(workdir, name)))
  head = markdown.header("What each part of the 1x1 bottleneck buys: the ablation study", made_by,
                         start=start, counts=f"; {done} training runs finished, {n_failed} failed",
                         data=_data_line(variant, plan))
  head += [
      "Accuracy is test accuracy, mean ± std over seeds; each difference is paired by seed, "
      "with a 95% interval that counts both the seeds (Student's t over the per-seed "
      "differences) and the finite test set (the per-example differences), as the column "
      "\"interval covers\" says (`bottleneck.analysis.intervals`; calibrated on synthetic data, "
      "and checked by the A/A row below). \"Within noise\" means the interval holds 0. "
      "MACs are multiply-accumulates per image. Training time is each run's wall time of "
      "training steps; seeds trained together as one program share theirs evenly.", ""
  ]
  path = os.path.join(workdir, ABLATION)
  wd.atomic_write_text(path, markdown.render(head, sections))
  logging.info("ablation report written to %s", path)
  return path


def along_the_run(
    sweep_dir: str, runs: pd.DataFrame | None, out_dir: str, name: str, group: str = "budget",
    contrast: tuple[str, str, str] = ("variant", "naive", "reduced")
) -> list[str]:
  """Lines for a question whose runs were evaluated along training (two points or more,
  `eval_every_epochs`): at each value of `group` (the MAC budget; the ratio), `contrast`'s
  first minus its second (column, first value, second value) at every point with its interval
  (a figure, `out_dir/<name>_along_<i>.png`), the verdict at the end and at the point chosen
  on the validation split (where the runs' mean validation accuracy first reaches its best);
  and test accuracy against training time. [] otherwise."""
  from bottleneck.analysis import along_run, plots
  column, first, second = contrast
  if runs is None or group not in runs or column not in runs:
    return []
  lines, tables_by = [], {first: [], second: []}
  for i, value in enumerate(sorted(set(runs[group]), key=str)):
    at = runs[runs[group] == value]
    seeds = sorted(
        set(at.loc[at[column] == first, "seed"]) & set(at.loc[at[column] == second, "seed"]))
    dirs = {
        v: [
            os.path.join(sweep_dir, at.loc[(at[column] == v) & (at["seed"] == s), "run"].iloc[0])
            for s in seeds
        ] for v in (first, second)
    }
    frame = along_run.difference_along_run(dirs[first], dirs[second], names=(first, second))
    if len(frame) < 2:
      continue
    evaluated = {v: [along_run.evaluations(d) for d in ds] for v, ds in dirs.items()}
    for v, tables_of in evaluated.items():
      tables_by[v] += tables_of
    step = along_run.chosen_step(
        pd.concat(evaluated[first] + evaluated[second]).groupby("step", as_index=False).mean())
    end, where = frame.iloc[-1], value if group == "budget" else f"{group} {value}"
    at_chosen = ""
    if step is not None and step == int(end["step"]):
      at_chosen = ("; validation accuracy was highest at the last point, so no earlier one is "
                   "chosen (it had not stopped improving)")
    elif step is not None and (frame["step"] == step).any():
      row = frame[frame["step"] == step].iloc[0]
      at_chosen = (f"; at step {step}, where validation accuracy stopped improving: "
                   f"{row['difference']:+.2f} points, {row['verdict']}")
    figure = plots.difference_along_run(frame, f"{first} - {second}, {where}",
                                        os.path.join(out_dir, f"{name}_along_{i}.png"))
    lines += [
        f"Along training at {where}, {first} - {second} ({len(seeds)} seeds, {len(frame)} "
        f"points): at the end (step {int(end['step'])}) {end['difference']:+.2f} points, "
        f"{end['verdict']}{at_chosen}. Verdicts along the way: {_counts(frame['verdict'])}.", "",
        f"![{first} - {second} along training, {where}]({os.path.basename(figure)})", ""
    ]
  if lines:
    figure = plots.accuracy_along_time(tables_by, os.path.join(out_dir, f"{name}_along_time.png"))
    lines += [f"![accuracy against training time]({os.path.basename(figure)})", ""]
  return lines


def _run_or_not(runs: dict, variant: str, plan) -> tuple[tuple, tuple]:
  """The sections of "how far can the reduction go" and "which reduction matters", or a line
  saying that the variant does not run them."""
  ratio = (_ratio(runs.get("ablation_ratio")) if plan.ratio_naive(variant) else
           ("How far can the reduction go?", "not run in this variant (its ratio sweep trains "
            "no naive network; see the other studies).", ["Not run."]))
  placement = (_placement(runs.get("ablation_placement"))
               if "ablation_placement" in plan.sweeps(variant) else
               ("Which reduction matters?", "not run on this dataset (the placement study "
                "trains GoogLeNet; see the digits' and CIFAR-10's studies).", ["Not run."]))
  return ratio, placement


def _with_lines(parts: tuple, lines: list[str]) -> tuple:
  """A question's (title, answer, body) with `lines` after its body (none: unchanged)."""
  title, answer, body = parts
  return (title, answer, [*body, "", *lines[:-1]]) if lines else parts


def _data_line(variant: str, plan) -> str:
  dataset = plan.dataset(variant)
  c = plan.base(variant)
  text = {
      "digits": "the offline 8x8 digits, on which every variant reaches 97-99%: "
                "differences are small and the cluttered variant (`--study=ablation:"
                "cluttered`) is the capacity-limited test (docs/ablations.md).",
      "digits_cluttered": "the cluttered digits (24x24, offline), on which small "
                          "networks are capacity-limited (docs/ablations.md).",
      "cifar10": "CIFAR-10 (Zhang et al.'s recipe).",
      "fashion_mnist": "Fashion-MNIST (real 28x28 images), trained on " +
                       (f"the first {plan.FASHION_TRAIN:,} training images (`{c.train_split}`), "
                        if not c.get("validation_split") else
                        f"the training images `{c.train_split}`, validated along the run on "
                        f"held-out images (`{c.validation_split}`), ") +
                       ("scored on all 10,000 test images." if c.eval_split == "test" else
                        f"scored on the test images `{c.eval_split}` (of 10,000).")
  }[dataset]
  return (f"{text} {c.num_epochs:g} epochs per run" +
          (" (GoogLeNet's placement study included), "
           if "ablation_placement" in plan.sweeps(variant) else ", ")
          + f"{len(plan.seeds(variant))} seeds per point (and {len(plan.aa_seeds(variant))} more "
          "for the A/A check).")


def _table(frame: pd.DataFrame) -> list[str]:
  return [tables.render(frame, "markdown")] if not frame.empty else ["(no pairs to compare)"]


def _counts(verdicts) -> str:
  verdicts = list(verdicts)
  counts = pd.Series(verdicts).value_counts()
  return ", ".join(f"{v} at {n}" for v, n in counts.items())


def _missing(title: str, sweep_name: str):
  return (title, f"not measured: no run of `{sweep_name}` finished (see its error.json files).",
          ["No finished runs."])


def _summary(runs, *knobs):
  """Seeds aggregated per model, dataset, variant, every knob that varies, and the study's
  own knobs (even where only one value of them finished)."""
  group_by = results.default_group_by(runs)
  return results.aggregate(runs, group_by + [k for k in knobs if k not in group_by])


def _by_budget(frame: pd.DataFrame) -> pd.DataFrame:
  """Rows in order of their budget's number ("macs 2.5e+05" before "macs 2e+06")."""
  if frame.empty or "budget" not in frame:
    return frame
  number = pd.to_numeric(frame["budget"].str.split().str[-1], errors="coerce")
  order = sorted(range(len(frame)), key=lambda i: (number.iloc[i], i))
  return frame.iloc[order].reset_index(drop=True)


def _not_learned(summary: pd.DataFrame) -> str:
  """A warning to put first in an answer when some of its groups did not learn."""
  bad = results.not_learned(summary)
  if bad.empty:
    return ""
  names = [
      ", ".join(f"{k} {row[k]}"
                for k in ("variant", *results.KNOBS)
                if k in row and row[k] != results.NOT_APPLICABLE)
      for _, row in bad.iterrows()
  ]
  return (f"**Warning: {len(bad)} group(s) did not learn** (accuracy below twice chance: "
          f"{'; '.join(names)}); what this section says about them says nothing about the "
          "networks. ")


def _equal_compute(runs):
  title = "At equal compute, is the reduced network more accurate?"
  if runs is None:
    return _missing(title, "iso_macs")
  summary = _by_budget(_summary(runs, "budget"))
  pairs = _by_budget(results.ratios(summary, runs))
  if pairs.empty:
    return title, "not measured: naive and reduced did not both finish.", ["No pairs."]
  answer = _not_learned(summary) + (
      f"Naive against reduced at {len(pairs)} MAC budget(s): {_counts(pairs['verdict'])}. "
      "Differences (naive - reduced, points): "
      + "; ".join(f"{r.get('budget', 'published widths')}: "
                  f"{r[results.DIFFERENCE]:+.2f} "
                  f"{r[results.INTERVAL] or ''}" for _, r in pairs.iterrows()) + ".")
  body = [
      "Each network at the width that costs the budget within 1% (`match_width`):", "",
      tables.render(results.display(summary), "markdown"), "", *_table(pairs)
  ]
  return title, answer, body


def _activation(runs):
  title = "Does the ReLU after the 1x1 help?"
  if runs is None:
    return _missing(title, "ablation_ratio")
  reduced = runs[runs["variant"] == "reduced"]
  table = results.compare(reduced, "activation", "relu", "linear", by=["ratio"])
  if table.empty:
    return title, "not measured: ReLU and linear reductions did not both finish.", ["-"]
  answer = (f"ReLU against a linear 1x1 at {len(table)} ratio(s): {_counts(table['verdict'])} "
            "(ReLU - linear, points: "
            + "; ".join(f"ratio {r['ratio']}: {r[results.PAIRED_DIFFERENCE]:+.2f}"
                        for _, r in table.iterrows()) + ").")
  return title, answer, [
      "ReLU minus linear, paired by seed, at each reduction ratio:", "", *_table(table)
  ]


def _ratio(runs):
  title = "How far can the reduction go?"
  if runs is None:
    return _missing(title, "ablation_ratio")
  summary = _summary(runs, "ratio", "activation")
  pairs = results.ratios(summary, runs)
  if pairs.empty:
    return title, "not measured: no reduced run paired with a naive one.", ["No pairs."]
  answer = _not_learned(summary) + " ".join(
      _reach(pairs[pairs["activation"] == act], act)
      for act in ("relu", "linear")
      if (pairs["activation"] == act).any())
  body = [
      "Every reduced run against the naive network (MACs and time are naive/reduced):", "",
      tables.render(results.display(summary), "markdown"), "", *_table(pairs)
  ]
  return title, answer, body


def _reach(pairs: pd.DataFrame, activation: str) -> str:
  """How far one family's reduction goes: the smallest ratio whose network is not measurably
  less accurate than the naive one."""
  pairs = pairs.assign(r=pd.to_numeric(pairs["ratio"], errors="coerce")).sort_values("r")
  worse = pairs[pairs["verdict"] == "naive more accurate"]
  fine = pairs[~pairs["r"].isin(worse["r"])]
  with_ = "With the ReLU" if activation == "relu" else "With a linear 1x1"
  if fine.empty:
    return f"{with_}, the naive network is more accurate at every ratio run."
  if worse.empty:
    return (f"{with_}, down to ratio {fine['r'].iloc[0]:g} (the smallest run, "
            f"{fine[results.MACS_RATIO].iloc[0]:.2f}x fewer MACs than naive) the reduced "
            "network is not measurably less accurate than the naive one.")
  return (f"{with_}, the smallest ratio not measurably less accurate than naive is "
          f"{fine['r'].iloc[0]:g} ({fine[results.MACS_RATIO].iloc[0]:.2f}x fewer MACs); "
          f"at {', '.join(f'{x:g}' for x in worse['r'])} naive is more accurate.")


def _placement(runs):
  title = "Which reduction matters?"
  if runs is None:
    return _missing(title, "ablation_placement")
  summary = _summary(runs, "places")
  pairs = results.ratios(summary, runs)
  if pairs.empty:
    return title, "not measured: no reduced run paired with a naive one.", ["No pairs."]
  answer = _not_learned(summary) + (
      "Each placement against the naive GoogLeNet (naive - reduced, points): "
      + "; ".join(f"{r['places']}: {r[results.DIFFERENCE]:+.2f} ({r['verdict']}, "
                  f"{r[results.MACS_RATIO]:.2f}x fewer MACs)" for _, r in pairs.iterrows()) + ".")
  body = [
      "GoogLeNet (Caffe's geometry, batch norm) with the reductions only where named:", "",
      tables.render(results.display(summary), "markdown"), "", *_table(pairs)
  ]
  return title, answer, body


def _a_a(runs, variant: str, plan):
  """The A/A check: the reduced network at iso_macs's middle budget, seeds against other
  seeds of the same config."""
  title = "Are the intervals honest? The A/A check"
  if runs is None:
    return _missing(title, "iso_macs")
  budget = plan.BUDGETS[plan.dataset(variant)][1]
  where = {"variant": "reduced", "budget": f"macs {budget:.4g}"}
  first, second = plan.seeds(variant), plan.aa_seeds(variant)
  aa = results.a_a(runs, where, first, second)
  verdict = aa["verdict"]
  if verdict is None:
    return title, "not measured: fewer than 2 seeds of each set finished.", ["-"]
  ok = verdict == "within noise"
  answer = (f"one config (reduced at {where['budget']}) under two disjoint seed sets: "
            f"{aa[results.PAIRED_DIFFERENCE]:+.2f} points, 95% interval "
            f"{aa[results.INTERVAL]} over the {aa[results.COVERS]}: {verdict}" +
            (", as it must be."
             if ok else ": **the intervals are too narrow for this study; read its verdicts with "
             "care**."))
  table = pd.DataFrame([{
      "config": f"reduced, {where['budget']}", "seeds A": ",".join(map(str, first)),
      "seeds B": ",".join(map(str, second)),
      **{k: v for k, v in aa.items() if k != "interval"}, "verdict": verdict
  }])
  return title, answer, [
      "The same config twice, seed sets paired in order; with no true "
      "difference, a calibrated 95% interval holds 0 in 95% of such "
      "checks:", "", *_table(table)
  ]


def _time(bench: dict):
  from bottleneck.measure import benchmark
  from bottleneck.util import env
  title = "Where does the 1x1 stop paying in time?"
  lines = benchmark.break_even(bench["ratios"])
  answer = " ".join(lines) if lines else "not measured: the benchmark timed no pairs."
  failed = benchmark.failed(bench["rows"])
  body = [
      f"Forward+backward at batch 32 on {env.device_description()}, the reduced block at "
      "each ratio of its input's channels against the naive block (medians; "
      "`configs/benchmark.py:ratio`):", "", *_table(
          pd.DataFrame(bench["ratios"]).reindex(
              columns=["name", "ratio", results.
                       MACS_RATIO, "time naive/reduced"]) if bench["ratios"] else pd.DataFrame()),
      "", *[f"- FAILED {r['name']}: {r['error']}" for r in failed]
  ]
  return title, answer, body
