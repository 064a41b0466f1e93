"""The one-command report: what the 1x1 reductions cost, what they save in time on real block
sizes, what they do to accuracy, and 1x1 = fully connected, with a finding computed from it all.

`build_report(workdir)` writes `workdir/REPORT.md` with everything it measured, beside
`complexity/*.json`, `benchmark/` (the timings of real blocks), `digits/<point>/` run
directories, `fully_conv/` (a Dense-head classifier trained, convolutionalized and run on a
larger canvas) and `*.png` plots. Rerunning reuses finished work: complexity and benchmark
files that exist (a corrupt one is set aside and redone), sweep points and the Dense-head run
that have a result.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time

import numpy as np
from absl import logging

from bottleneck.analysis import markdown, plots, results, tables
from bottleneck.measure import benchmark, complexity
from bottleneck.train import sweep
from bottleneck.util import env, errors, validation, workdir as wd

COMPLEXITY_MODELS = ("googlenet", "inception_v3", "inception_small")
# Real block sizes: GoogLeNet's (3a) and (4e) and Inception-v3's B, at batch 32.
BENCHMARK_CASES = ("inception_3a", "inception_4e", "v3_block_b")
BENCHMARK_BATCH = 32
REPORT = "REPORT.md"
STEPS = 5


def _complexity(workdir: str, models) -> dict[str, list[dict]]:
  """Each model's parameters and multiply-adds, reduced and naive (`complexity.analyze`),
  kept in complexity/<model>.json."""
  out = {}
  for i, model in enumerate(models):

    def compute(model=model, i=i) -> list[dict]:
      logging.info("[1/%d] complexity of %s (%d/%d), reduced and naive", STEPS, model, i + 1,
                   len(models))
      return [complexity.analyze(model, reduce=r) for r in (True, False)]

    out[model] = markdown.cached_json(
        workdir, os.path.join("complexity", f"{model}.json"), compute, valid=lambda d: isinstance(
            d, list) and len(d) == 2 and all(isinstance(r, dict) and "total" in r for r in d),
        what=f"[1/{STEPS}] complexity of {model}")
  return out


def _benchmark(workdir: str, cases, batch: int, repeats: int) -> dict:
  """Real block sizes timed naive and reduced (`bottleneck.measure.benchmark`), with the matmul peak
  measured in the same run: {"rows", "ratios", "verdict", "settings"}, kept in
  benchmark/benchmark.json (reused while its cases, batch and repeats are these and every case
  was timed), plotted in benchmark/time_vs_macs.png."""
  wanted = {(c, r) for c in cases for r in (True, False)}

  def compute() -> dict:
    logging.info("[3/%d] time on real block sizes: %s, naive and reduced, batch %d", STEPS,
                 ", ".join(cases), batch)
    rows = benchmark.run(list(cases), batches=[batch], repeats=repeats)
    ratios = benchmark.central_ratios(rows)
    if benchmark.timed(rows):
      os.makedirs(os.path.join(workdir, "benchmark"), exist_ok=True)
      plots.time_vs_macs(benchmark.timed(rows), env.device_description(),
                         os.path.join(workdir, "benchmark", "time_vs_macs.png"))
    return {"rows": rows, "ratios": ratios, "verdict": benchmark.verdict(ratios)}

  return markdown.cached_json(
      workdir,
      os.path.join("benchmark", "benchmark.json"),
      compute,
      settings={"cases": list(cases), "batch": batch, "repeats": repeats},
      valid=lambda d: "verdict" in d and {(r.get("name"), r.get("reduce"))
                                          for r in d.get("rows", [])
                                          if "error" not in r} == wanted,  # a failed case: again
      what=f"[3/{STEPS}] time on real block sizes")


FC_SIZE = 32  # the canvas of test digits the convolutionalized classifier reads


def _fully_conv(workdir: str, fc_config: str, data_dir: str | None) -> dict:
  """1x1 = fully connected: the digits classifier with a flatten + Dense head trained (or its
  finished run reused), convolutionalized and run on a 32x32 canvas of test digits, its score
  map checked against classifying each crop (`bottleneck.studies.fully_conv`). A rerun reuses the
  maps and their figures while the training's result is the one they were made from."""
  from bottleneck.studies import fully_conv
  from bottleneck.train import loop
  run_dir = os.path.join(workdir, "fully_conv", "train")
  config = importlib.import_module(fc_config).get_config()
  if data_dir:
    config.data_dir = data_dir
  logging.info("[4/%d] 1x1 = fully connected: the Dense-head classifier in %s", STEPS, run_dir)
  result = loop.train_and_evaluate(config, run_dir)

  def compute() -> dict:
    out = fully_conv.run(run_dir, FC_SIZE, out_dir=os.path.join(workdir, "fully_conv"))
    return {**out, "eval_accuracy": result["eval_accuracy"]}

  # The maps are the classifier's: one trained again has its own train_time_s.
  made_from = {
      "image_size": FC_SIZE, "train_steps": result["train_steps"],
      "eval_accuracy": result["eval_accuracy"], "train_time_s": result.get("train_time_s")
  }
  return markdown.cached_json(
      workdir, os.path.join("fully_conv", "fully_conv.json"), compute, settings=made_from,
      valid=lambda d: bool(d.get("files")) and all(os.path.exists(f) for f in d["files"]),
      what=f"[4/{STEPS}] 1x1 = fully connected")


def _nanmax(values) -> float:
  """The largest value that is not NaN; NaN if none (without numpy's warning)."""
  values = [float(v) for v in values if not np.isnan(v)]
  return max(values) if values else float("nan")


def digits_clause(summary, ratio_row, blocks_saved_time: bool | None = None) -> str:
  """The digits sweep's sentences: cost, accuracy with its interval and verdict (from
  `ratio_row`: `results.ratios` with the runs, `bottleneck.analysis.intervals`), training time. The
  time is said to be the tiny network's own; where it goes against the real blocks'
  (`blocks_saved_time`), the sentence says so rather than generalize."""
  by = summary.set_index("variant")
  acc = {
      v: (100 * by.loc[v, "eval_accuracy mean"], 100 * by.loc[v, "eval_accuracy std"])
      for v in ("reduced", "naive")
  }
  time_s = {v: by.loc[v, "train_time_s mean"] for v in ("reduced", "naive")}
  # The paired difference, the sign of the tables' column, over the seeds both variants ran.
  diff = ratio_row.get(results.DIFFERENCE, acc["naive"][0] - acc["reduced"][0])
  interval = ratio_row.get(results.INTERVAL)
  if interval:
    noise = (f"95% interval {interval} over the {ratio_row[results.COVERS]}: "
             f"{ratio_row['verdict']}")
  else:
    noise = "no interval (fewer than 2 seeds paired): no verdict"
  # A time difference inside the seeds' spread is no saving and no loss.
  time_spread = _nanmax([by.loc[v].get("train_time_s std", np.nan) for v in ("reduced", "naive")])
  time_diff = time_s["naive"] - time_s["reduced"]
  if np.isnan(time_diff):  # every run of a variant resumed without its metrics
    timing = ("The training time of one variant is unknown (its runs were resumed without "
              "their metrics), so no time is compared.")
  else:
    if not np.isnan(time_spread) and abs(time_diff) <= time_spread:
      verdict = ("the difference is within the seed-to-seed spread "
                 f"({time_spread:.1f} s): no measurable saving in time")
      saved = None
    else:
      saved = time_diff > 0
      verdict = (f"the saving in multiply-adds {'did' if saved else 'did not'} turn "
                 "into a saving in time on this small network")
    timing = (f"Training took {time_s['reduced']:.1f} s with reductions and "
              f"{time_s['naive']:.1f} s without on this machine: {verdict}.")
    if blocks_saved_time is not None and saved is not None and saved != blocks_saved_time:
      timing += (" Its maps are a few pixels wide, where fixed costs, not multiply-adds, set "
                 "the time; on real block sizes (above) the reductions "
                 f"{'did' if blocks_saved_time else 'did not'} save time.")
  return (f"On the digits, the 1x1 reductions cut parameters "
          f"{ratio_row['params naive/reduced']:.2f}x and multiply-adds "
          f"{ratio_row[results.MACS_RATIO]:.2f}x; test accuracy was {acc['reduced'][0]:.2f}% "
          f"with them and {acc['naive'][0]:.2f}% without (n = {int(by.loc['reduced', 'n'])} and "
          f"{int(by.loc['naive', 'n'])} seeds): naive minus reduced {diff:+.2f} points, {noise}. "
          f"{timing}")


def aa_clause(runs, seeds_a, seeds_b) -> str | None:
  """The A/A check's sentence: the reduced config under two disjoint seed sets (the sweep
  config's `SEEDS` and `AA_SEEDS`), compared as two configs would be; with calibrated intervals
  it is "within noise" 95% of the time. None where the sweep has no second set."""
  if not seeds_b:
    return None
  aa = results.a_a(runs, {"variant": "reduced"}, seeds_a, seeds_b)
  head = (f"An A/A check (the reduced config, seeds {','.join(map(str, seeds_a))} against "
          f"{','.join(map(str, seeds_b))})")
  if aa["verdict"] is None:
    return f"{head} was not measured: fewer than 2 seeds of each set finished."
  ok = aa["verdict"] == "within noise"
  return (f"{head}: {aa[results.PAIRED_DIFFERENCE]:+.2f} points, 95% interval "
          f"{aa[results.INTERVAL]} over the {aa[results.COVERS]}: {aa['verdict']}" +
          (", as it must be." if ok else "; it should hold 0, so the interval above may be too "
           "narrow: read its verdict with care."))


def cost_clause(cplx: dict[str, list[dict]]) -> str | None:
  """What the reductions cut in each network analyzed: parameters and MACs, naive/reduced."""
  parts = []
  for model, reps in cplx.items():
    red, naive = ({r["reduce"]: r for r in reps}.get(v) for v in (True, False))
    if red is None or naive is None or model == "inception_small":
      continue
    parts.append(f"{model}'s parameters "
                 f"{naive['total']['params'] / red['total']['params']:.1f}x and its "
                 f"multiply-adds {naive['total']['macs'] / red['total']['macs']:.1f}x")
  return ("The 1x1 reductions cut " + "; ".join(parts) + ".") if parts else None


def blocks_clause(bench: dict) -> tuple[str, bool | None]:
  """What the reductions saved in time on real block sizes (the benchmark's ratios), and
  whether they saved any (None if nothing was timed)."""
  ratios = bench.get("ratios") or []
  if not ratios:
    return "No naive/reduced block pair could be timed.", None
  geo = lambda k: float(np.exp(np.mean([np.log(r[k]) for r in ratios])))
  t, m = geo("time naive/reduced"), geo(results.MACS_RATIO)
  names = ", ".join(r["name"] for r in ratios)
  saved = t > 1.05
  how = (f"cut forward+backward time {t:.2f}x"
         if saved else f"did not save forward+backward time ({t:.2f}x)")
  return (f"On real block sizes ({names}; batch {ratios[0]['batch']}) on this device, "
          f"{m:.2f}x fewer multiply-adds {how} (geometric means).", saved)


def fc_clause(fc: dict) -> str:
  """1x1 = fully connected, from the converted classifier's numbers."""
  h, w = fc["input_shape"][1:3]
  mh, mw = fc["score_map_shape"][:2]
  right = sum(p["predicted"] == p["label"] for p in fc["digits"])
  return (f"A 1x1 conv is a fully connected layer at every pixel: the digits classifier's "
          f"Dense head, rewritten as convolutions, scored a {h}x{w} canvas in one pass as a "
          f"{mh}x{mw} map, the same scores as classifying each of its {fc['crops_checked']} "
          f"crops alone (max |difference| {fc['max_abs_diff_vs_crops']:.2g}), and named "
          f"{right} of the {len(fc['digits'])} digits placed on it.")


def finding(*, cplx=None, bench=None, summary=None, ratio_row=None, aa=None, fc=None) -> str:
  """The report's finding: one clause per part, each computed from that part's numbers (`aa`:
  the A/A check's sentence, `aa_clause`)."""
  clauses = [cost_clause(cplx or {})]
  saved = None
  if bench is not None:
    text, saved = blocks_clause(bench)
    clauses.append(text)
  if summary is not None and ratio_row is not None:
    clauses += [digits_clause(summary, ratio_row, saved), aa]
  if fc is not None:
    clauses.append(fc_clause(fc))
  return " ".join(c for c in clauses if c)


@dataclasses.dataclass(frozen=True)
class Parts:
  """What the report runs: the networks counted, the digits sweep's config module (required),
  the blocks timed (none: that part is left out) and how, the Dense-head classifier's config
  module (None: left out), and the other studies' reports it links: (title, where its command
  writes it, the copy in docs/, the command), as the entry point lists them."""
  models: tuple[str, ...] = COMPLEXITY_MODELS
  sweep_config: str | None = None
  benchmark_cases: tuple[str, ...] = BENCHMARK_CASES
  benchmark_batch: int = BENCHMARK_BATCH
  benchmark_repeats: int = 3
  fc_config: str | None = None
  studies: tuple[tuple[str, str, str, str], ...] = ()


def build_report(workdir: str, *, parallel: int = 1, data_dir: str | None = None,
                 rerun_changed: bool = False, **parts) -> str:
  """Runs (or reuses) every part and writes REPORT.md; returns its path. The workdir is
  locked while it runs; sweep points whose config changed are refused unless
  `rerun_changed` (see `bottleneck.train.sweep.run`). `parts`: fields of `Parts` to change
  (`benchmark_cases=()` and `fc_config=None` leave those parts out: the tests' tiny reports)."""
  validation.positive_int(parallel, "parallel", "report")  # before anything is written
  parts = Parts(**{k: tuple(v) if isinstance(v, list) else v for k, v in parts.items()})
  if not parts.sweep_config:
    raise errors.ConfigError("report: no sweep_config (the digits sweep's config module).")
  with wd.lock(workdir):
    # The seeds of a variant compile the same programs: compiled once, for all of them.
    env.use_compilation_cache(os.path.join(workdir, ".jax_cache"))
    start = time.time()
    measured = _measure(workdir, parts, parallel, data_dir, rerun_changed)
    logging.info("[5/%d] tables, plots and REPORT.md", STEPS)
    head = markdown.header("What the 1x1 reductions buy: report",
                           markdown.command("experiments.report", f"--workdir={workdir}"),
                           start=start)
    path = os.path.join(workdir, REPORT)
    wd.atomic_write_text(path, markdown.render(head, _sections(workdir, parts, **measured)))
    logging.info("report written to %s in %.0f s", path, time.time() - start)
    return path


def _measure(workdir: str, parts: Parts, parallel: int, data_dir: str | None,
             rerun_changed: bool) -> dict:
  """Every part run or reused: {"cplx", "points", "failed", "bench", "fc"}."""
  cplx = _complexity(workdir, parts.models)
  sweep_dir = os.path.join(workdir, "digits")
  logging.info("[2/%d] digits sweep in %s (finished runs are reused)", STEPS, sweep_dir)
  # One run per process and point, not the seeds as one program: the finding compares the
  # variants' training times, and a vmapped program's share of time favours some networks
  # over others (docs/training.md).
  points, outcomes = sweep.run_module(parts.sweep_config, sweep_dir, data_dir=data_dir,
                                      parallel=parallel, rerun_changed=rerun_changed,
                                      seeds_together=False)
  # Timed after the sweep, with nothing else running.
  bench = (_benchmark(workdir, parts.benchmark_cases, parts.benchmark_batch,
                      parts.benchmark_repeats) if parts.benchmark_cases else None)
  fc = _fully_conv(workdir, parts.fc_config, data_dir) if parts.fc_config else None
  failed = {k: v for k, v in outcomes.items() if not v.finished}
  return {"cplx": cplx, "points": points, "failed": failed, "bench": bench, "fc": fc}


def _studies(workdir: str, studies) -> list[str]:
  """Lines linking the other studies' reports that exist (this machine's run first, else the
  copy in docs/), each with the command that makes it: links, not reruns."""
  lines = []
  for title, run_path, doc_path, command in studies:
    found = [(p, what)
             for p, what in ((os.path.abspath(run_path), "run on this machine"),
                             (os.path.abspath(doc_path), "the copy in docs/"))
             if os.path.exists(p)]
    # <...>: a link target may hold spaces (CommonMark).
    link = (f"[{os.path.basename(found[0][0])}](<{os.path.relpath(found[0][0], workdir)}>) "
            f"({found[0][1]})" if found else "not run yet")
    lines.append(f"- **{title}**: {link}. Made by `{command}`.")
  return lines


def _sections(workdir: str, parts: Parts, *, cplx, points, failed, bench,
              fc) -> list[markdown.Section]:
  """REPORT.md's sections from what `_measure` gave."""
  sweep_dir = os.path.join(workdir, "digits")
  every_run = results.collect(sweep_dir)
  # The comparison's tables, plots and finding take the seeds of the comparison; the A/A
  # check's second set of seeds (the sweep config's AA_SEEDS) only the A/A check.
  module = importlib.import_module(parts.sweep_config)
  seeds_a, seeds_b = (tuple(getattr(module, name, ())) for name in ("SEEDS", "AA_SEEDS"))
  runs = every_run[~every_run["seed"].isin(seeds_b)]
  summary = results.aggregate(runs)
  ratio = results.ratios(summary, runs)
  aa = aa_clause(every_run, seeds_a, seeds_b)
  found = finding(cplx=cplx, bench=bench, summary=None if ratio.empty else summary,
                  ratio_row=None if ratio.empty else ratio.iloc[0], aa=aa, fc=fc)
  sections = [
      markdown.Section(
          "Finding", [found] +
          ([] if not ratio.empty else
           ["The digits sweep did not finish both variants; see the failures below."])),
      _cost_section(cplx)
  ]
  if bench is not None:
    sections.append(_time_section(workdir, bench, parts.benchmark_batch))
  acc_png = plots.accuracy_vs_cost(runs, os.path.join(workdir, "accuracy_vs_cost.png"))
  curves_png = plots.training_curves(sweep_dir, runs, os.path.join(workdir, "curves.png"))
  body = [
      f"`{parts.sweep_config.replace('.', '/')}.py`, both variants x seeds "
      f"({len(points)} runs in `{os.path.relpath(sweep_dir, workdir)}/`"
      f"{f', {len(seeds_b)} of them for the A/A check' if seeds_b else ''}). Mean ± std over "
      "seeds; train time is wall time of the training steps (data included, compilation "
      "and evaluation not). The inputs are 8x8: its maps are a few pixels wide, so its "
      "time says little about the multiply-adds (the section above does).", "",
      tables.render(results.display(summary), "markdown"), ""
  ]
  if not ratio.empty:
    body += [tables.render(ratio, "markdown"), ""]
  if aa:
    body += [
        aa + " With no true difference, a calibrated 95% interval holds 0 in 95% of such "
        "checks.", ""
    ]
  if failed:
    body += ["Failed points:", ""] + [f"- `{k}`: {v}" for k, v in failed.items()] + [""]
  body += [
      f"![accuracy against cost]({os.path.basename(acc_png)})", "",
      f"![training curves]({os.path.basename(curves_png)})", ""
  ]
  sections.append(markdown.Section("Accuracy and time: small Inception on the digits", body))
  if fc is not None:
    sections.append(_fully_conv_section(workdir, fc, parts.fc_config))
  sections.append(markdown.Section("Other studies", [*_studies(workdir, parts.studies), ""]))
  return sections


def _cost_section(cplx: dict[str, list[dict]]) -> markdown.Section:
  body = [
      "MACs are multiply-accumulates per image; FLOPs = 2 x MACs; XLA FLOPs are XLA's "
      "own count of the compiled forward (it skips taps on zero padding and counts "
      "element-wise work).", ""
  ]
  for model, reps in cplx.items():
    body += [f"### {model}", "", tables.render(tables.totals_frame(reps), "markdown"), ""]
  if "googlenet" in cplx:
    body += [
        "Per block, GoogLeNet (Table 1 widths):", "",
        tables.render(tables.complexity_frame(cplx["googlenet"]), "markdown"), ""
    ]
  return markdown.Section("Cost: parameters and multiply-adds, reduced vs naive", body)


def _time_section(workdir: str, bench: dict, batch: int) -> markdown.Section:
  body = [
      "Each block alone on the input the paper's network gives it (GoogLeNet's (3a) on "
      "28x28x192, ...), naive and reduced, at batch "
      f"{batch}: forward (eval mode) and forward+backward (gradients of the "
      "parameters and the input, batch norm in train mode), medians after a warm-up, "
      "and achieved/peak: the forward+backward rate (3 x 2 x MACs a second) over "
      "the rate of one 2048x2048x2048 `jnp.dot` measured in the same run "
      "(`python -m experiments.benchmark`, docs/benchmarks.md). It is a comparison "
      "with that one matmul, not a fraction of a hard limit: above 1 the "
      "convolution kernels (another library, other blocking) outran it, and the 3x "
      "convention for the backward pass counts work that some layers skip (the "
      "input's gradient at the first layer).", "",
      tables.benchmark_brief(bench["rows"], bench["ratios"], bench["verdict"]), "",
      "All columns, and the paths each op took: `benchmark/benchmark.json`.", ""
  ]
  if os.path.exists(os.path.join(workdir, "benchmark", "time_vs_macs.png")):
    body += ["![time against multiply-adds](benchmark/time_vs_macs.png)", ""]
  return markdown.Section("Time on real block sizes", body)


def _fully_conv_section(workdir: str, fc: dict, fc_config: str) -> markdown.Section:
  return markdown.Section("1x1 = fully connected: a classifier becomes a score map", [
      f"`{fc_config.replace('.', '/')}.py` (conv, conv, pool, flatten, Dense, Dense) "
      f"trained on the digits (test accuracy {100 * fc['eval_accuracy']:.2f}%), then "
      "`bottleneck.nn.conversions.convolutionalize`: the first Dense layer becomes a "
      "conv the size of its input map, the second a 1x1 conv. The converted network "
      "takes any larger input and returns a map of class scores, one per "
      f"{fc['stride']}-pixel step (docs/fully_conv.md).", "",
      fully_conv_table(fc), "", f"![score maps]({os.path.relpath(fc['files'][0], workdir)})", ""
  ])


def fully_conv_table(fc: dict) -> str:
  """The converted classifier's run as a markdown table and the digits it found."""
  rows = [("input", "x".join(map(str, fc["input_shape"][1:]))),
          ("score map", "x".join(map(str, fc["score_map_shape"]))),
          ("max abs difference against classifying each crop",
           f"{fc['max_abs_diff_vs_crops']:.3g} ({fc['crops_checked']} crops)")]
  rows += [(f"digit {p['label']} at ({p['row']}, {p['col']})", f"predicted {p['predicted']}")
           for p in fc["digits"]]
  return "\n".join(["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
