"""Every table: complexity reports and benchmark results as text, markdown, CSV or JSON.

Frames are pandas DataFrames, rendered by `tabulate` (through `DataFrame.to_markdown`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from bottleneck.nn import blocks

# Every format a table renders in (`render`); each command offers those that fit its output.
FORMATS = ("table", "markdown", "csv", "latex", "json")


def _shape(shape) -> str:
  return "x".join(map(str, shape))


def complexity_frame(reports: Sequence[dict]) -> pd.DataFrame:
  """One row per layer, each variant's output, params and MACs side by side; with both
  variants, the naive/reduced ratios too. The last row holds the totals."""
  frames = []
  for rep in reports:
    v = blocks.variant(rep["reduce"])
    rows = [{
        "layer": l["name"], f"output ({v})": _shape(l["output_shape"]),
        f"params ({v})": l["params"], f"MACs ({v}, M)": l["macs"] / 1e6
    } for l in rep["layers"]]
    rows.append({
        "layer": "total", f"output ({v})": "", f"params ({v})": rep["total"]["params"],
        f"MACs ({v}, M)": rep["total"]["macs"] / 1e6
    })
    frames.append(pd.DataFrame(rows).set_index("layer"))
  # The widths of the first report (the reduced one when both are given), as in Table 1.
  widths = pd.DataFrame([l.get("widths", {}) for l in reports[0]["layers"]],
                        index=[l["name"] for l in reports[0]["layers"]]).astype("Int64")
  widths = widths[_table1_order(list(widths.columns))]
  frame = pd.concat([widths] + frames, axis=1)
  if len(reports) == 2:
    for what, naive, reduced in (("params", "params (naive)", "params (reduced)"),
                                 ("MACs", "MACs (naive, M)", "MACs (reduced, M)")):
      frame[f"{what} naive/reduced"] = frame[naive] / frame[reduced].where(frame[reduced] > 0)
  frame.index.name = "layer"
  return frame.reset_index()


def _table1_order(columns: list[str]) -> list[str]:
  """Each "#kxk reduce" just before its "#kxk", as in GoogLeNet's Table 1, whatever order the
  widths came in (a report read back from its JSON file has its keys sorted)."""
  out = []
  for c in columns:
    if c.endswith(" reduce"):
      continue
    if f"{c} reduce" in columns:
      out.append(f"{c} reduce")
    out.append(c)
  return out + [c for c in columns if c not in out]


def totals_frame(reports: Sequence[dict]) -> pd.DataFrame:
  """One row per variant: params, batch-norm statistics, MACs, FLOPs (=2xMACs), XLA FLOPs; the
  width multiplier when a budget was matched."""
  frame = pd.DataFrame([{
      "model": r["model"],
      "variant": blocks.variant(r["reduce"]),
      "input": f'{r["image_size"]}x{r["image_size"]}',
      "width": r.get("width"),
      "params": r["total"]["params"],
      "BN stats (not trained)": r["total"]["batch_stats"],
      "MACs (G)": round(r["total"]["macs"] / 1e9, 3),
      "FLOPs (=2xMACs, G)": round(r["total"]["flops"] / 1e9, 3),
      "XLA FLOPs (G)":
          (None if r["total"]["flops_xla"] is None else round(r["total"]["flops_xla"] / 1e9, 3)),
  } for r in reports])
  return frame if frame["width"].notna().any() else frame.drop(columns="width")


def memory_frame(reports: Sequence[dict]) -> pd.DataFrame:
  """With `--memory`: per layer and variant, the least bytes it moves (KB), its arithmetic
  intensity (FLOP/B), what its convs move each as a kernel (KB), and what training holds of
  it for the backward (KB), per image."""
  frames = []
  for rep in reports:
    v = blocks.variant(rep["reduce"])
    frames.append(
        pd.DataFrame([{
            "layer": l["name"], f"bytes ({v}, KB)": l["bytes"] / 1e3,
            f"FLOP/B ({v})": l["intensity"], f"conv bytes ({v}, KB)": l["conv_bytes"] / 1e3,
            f"saved ({v}, KB)": l["saved_bytes"] / 1e3
        } for l in rep["layers"]]).set_index("layer"))
  return pd.concat(frames, axis=1).reset_index()


def memory_totals_frame(reports: Sequence[dict]) -> pd.DataFrame:
  """With `--memory`: per variant, a training step's activation memory per image (every layer
  output, and the backward's minimum) and the largest tensor, in MB, in the compute dtype."""
  return pd.DataFrame([{
      "model": r["model"],
      "variant": blocks.variant(r["reduce"]),
      "dtype": r.get("dtype"),
      "train activations (MB/image)": r["total"]["train_activation_bytes"] / 1e6,
      "backward minimum (MB/image)": r["total"]["backward_minimum_bytes"] / 1e6,
      "XLA's compiled (MB/image)": (None if r["total"].get("train_activation_bytes_xla") is None
                                    else r["total"]["train_activation_bytes_xla"] / 1e6),
      "largest tensor (MB)": r["total"]["largest_tensor_bytes"] / 1e6,
  } for r in reports])


def render(frame: pd.DataFrame, fmt: str) -> str:
  """`frame` as text in `fmt` (one of FORMATS); numbers formatted by their column's unit,
  LaTeX with three significant digits."""
  if fmt == "csv":
    return frame.to_csv(index=False)
  if fmt == "json":
    return frame.to_json(orient="records", indent=1)
  if fmt == "latex":
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_markdown(index=False, tablefmt="latex_booktabs", floatfmt=".3g", missingval="")
  tablefmt = "github" if fmt == "markdown" else "simple"
  floatfmt = [
      ".2f" if "/" in c or c == "of roof" else ",.3f" if "G)" in c else
      ",.4g" if c.endswith("(M)") else ".4f" if c == "width" else "g" if c in ("ratio",
                                                                               "pct3x3") else ",.1f"
      for c in frame.columns
  ]
  frame = frame.astype(object).where(frame.notna(), None)
  return frame.to_markdown(index=False, tablefmt=tablefmt, floatfmt=floatfmt, intfmt=",",
                           missingval="")


def render_reports(reports: Sequence[dict], fmt: str) -> str:
  """The whole `experiments.analyze` output in format `fmt` (one of FORMATS but latex; json is
  the reports themselves)."""
  if fmt == "json":
    return json.dumps(reports[0] if len(reports) == 1 else list(reports), indent=1)
  if fmt == "csv":
    frame = complexity_frame(reports)
    if "train_activation_bytes" in reports[0]["total"]:
      frame = frame.merge(memory_frame(reports), on="layer", how="left")
    return render(frame, "csv")
  title = f"{reports[0]['model']}, input {reports[0]['image_size']}x{reports[0]['image_size']}"
  memory = ([render(memory_frame(reports), fmt),
             render(memory_totals_frame(reports), fmt)]
            if "train_activation_bytes" in reports[0]["total"] else [])
  return "\n\n".join([
      ("## " if fmt == "markdown" else "") + title,
      render(complexity_frame(reports), fmt),
      render(totals_frame(reports), fmt),
      *memory,
  ]) + "\n"


def benchmark_results(rows: list[dict], ratios: list[dict], verdict: str, fmt: str) -> str:
  """`experiments.benchmark`'s output: the matmul peak, the rows (failed ones named after), the
  naive/reduced ratios and the verdict, as a table, markdown or JSON."""
  from bottleneck.measure import benchmark
  if fmt == "json":
    return json.dumps({"rows": rows, "ratios": ratios, "verdict": verdict}, indent=1)
  errors = [
      f"FAILED {r['name']} ({blocks.variant(r['reduce'])}, batch "
      f"{r['batch']}): {r['error']}" for r in benchmark.failed(rows)
  ]
  rows = benchmark.timed(rows)
  frame = pd.DataFrame(rows)
  peer = [c for c in frame.columns if c.startswith(("torch_", "jax/torch"))]
  frame = frame.reindex(columns=benchmark.COLUMNS + peer)  # older rows lack newer columns
  frame["macs"] = frame["macs"] / 1e6
  frame = frame.rename(
      columns={
          "macs": "MACs (M, batch)", "peak_fraction": "achieved/peak",
          "xla_over_analytic": "XLA/analytic FLOPs"
      })
  peaks = {(r["dtype"], r["peak_gflops_per_s"]) for r in rows}
  peak_line = "matmul peak measured in this run: " + ", ".join(
      f"{p:.1f} GFLOP/s ({d})" for d, p in sorted(peaks))
  return "\n\n".join(
      [peak_line, render(frame, fmt),
       render(pd.DataFrame(ratios), fmt), verdict] + errors) + "\n"


def benchmark_brief(rows: list[dict], ratios: list[dict], verdict: str) -> str:
  """The benchmark's essentials as markdown (the main report): the peak, per block and variant
  the times and the fraction of the peak, the naive/reduced ratios, the verdict."""
  from bottleneck.measure import benchmark
  timed = benchmark.timed(rows)
  peaks = sorted({(r["dtype"], r["peak_gflops_per_s"]) for r in timed})
  frame = pd.DataFrame([{
      "block": r["name"], "variant": blocks.variant(r["reduce"]),
      "MACs (M, batch)": r["macs"] / 1e6, "forward ms": r["fwd_ms"],
      "forward+backward ms": r["fwd_bwd_ms"], "images/s": r["images_per_s"],
      "achieved/peak": r["peak_fraction"]
  } for r in timed])
  ratio_frame = pd.DataFrame(
      [{k: r[k]
        for k in ("name", benchmark.MACS_RATIO, "time naive/reduced", "time saved")}
       for r in ratios])
  errors = [
      f"- FAILED {r['name']} ({blocks.variant(r['reduce'])}): {r['error']}"
      for r in benchmark.failed(rows)
  ]
  return "\n\n".join([
      "matmul peak measured in this run: " + ", ".join(f"{p:.1f} GFLOP/s ({d})" for d, p in peaks)
  ] + ([render(frame, "markdown")] if timed else [])
                     + ([render(ratio_frame, "markdown")] if ratios else []) + [verdict] + errors)


def roofline_results(result: dict, memory: list[dict], findings: list[str], fmt: str) -> str:
  """`experiments.roofline`'s output: the findings, the timed rows on the roofline, the
  training memory, as a table or markdown (JSON: everything)."""
  if fmt == "json":
    return json.dumps({**result, "memory": memory, "findings": findings}, indent=1)
  rows = [r for r in result["rows"] if "error" not in r]
  frame = pd.DataFrame([{
      "name": r["name"], "kind": r["kind"],
      "variant": "" if r["reduce"] is None else blocks.variant(r["reduce"]),
      "MACs (M)": r["macs"] / 1e6, "conv bytes (MB)": r["conv_bytes"] / 1e6,
      "XLA bytes (MB)": None if r.get("bytes_xla") is None else r["bytes_xla"] / 1e6,
      "FLOP/B (one kernel)": r["intensity"], "FLOP/B (convs)": r["conv_intensity"],
      "fwd ms": r["fwd_ms"], "fwd+bwd ms": r["fwd_bwd_ms"], "GFLOP/s (fwd)": r["fwd_gflops_per_s"],
      "roof (GFLOP/s)": r["roof_gflops_per_s"], "of roof": r["of_roof"], "bound": r["bound"]
  } for r in rows])
  parts = ["\n".join(f"- {line}" for line in findings), render(frame, fmt)]
  if memory:
    parts.append(
        render(
            pd.DataFrame([{
                "model": m["model"], "variant": blocks.variant(m["reduce"]),
                "input": f"{m['image_size']}x{m['image_size']}", "batch": m["batch"],
                "params (M)": m["params"] / 1e6,
                "activations (MB/image)": m["activation_bytes_per_image"] / 1e6,
                "backward minimum (MB/image)": m["backward_minimum_bytes_per_image"] / 1e6,
                "XLA (MB/image)":
                    (m["xla_bytes_per_image"] / 1e6 if "xla_bytes_per_image" in m else None
                    ), "step, analytic (MB)": m["analytic_bytes"] / 1e6,
                "step, XLA (MB)": m["xla_bytes"] / 1e6 if "xla_bytes" in m else None,
                f"largest batch in {m['budget_gb']:g} GB (analytic)": m["analytic_largest_batch"],
                "(XLA)": m.get("xla_largest_batch")
            } for m in memory]), fmt))
  errors = [f"FAILED {r['name']}: {r['error']}" for r in result["rows"] if "error" in r]
  return "\n\n".join(parts + errors) + "\n"
