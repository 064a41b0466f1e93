"""Every plot (matplotlib, PNG): accuracy against cost per variant, training curves, a
difference and accuracy along training, time against multiply-adds (the benchmark), the
roofline, score-map heat maps (fully convolutional inference)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bottleneck.nn import blocks
from bottleneck.util import workdir as wd

COLORS = {"reduced": "tab:blue", "naive": "tab:orange"}


def runs_label(counts) -> str:
  """The runs behind a line's points, for its legend: "n=5", or "n=5-10" where the points
  hold different numbers of runs (a budget that the A/A check trains twice over)."""
  lo, hi = min(counts), max(counts)
  return f"n={lo}" if lo == hi else f"n={lo}-{hi}"


def accuracy_vs_cost(runs: pd.DataFrame, path: str) -> str:
  """Test accuracy against MACs and against params: one faint point per run, the mean +- std
  of each group (`results.default_group_by`: every ablation knob that varies), and a line
  through the groups of each family (same model, dataset, variant, activation and places;
  along the budgets and ratios), as a Pareto curve of accuracy against cost."""
  from bottleneck.analysis import results
  groups = [g for g in results.default_group_by(runs) if g in runs]
  family = [g for g in groups if g not in ("budget", "ratio")]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
  for ax, (col, label) in zip(axes, (("macs", "multiply-adds per image (MACs)"),
                                     ("params", "parameters"))):
    for key, fam in runs.groupby(family, sort=True):
      key = dict(zip(family, key if isinstance(key, tuple) else (key,)))
      color = COLORS.get(key.get("variant"))
      style = "--" if key.get("activation") == "linear" else "-"
      points = []
      for _, g in fam.groupby([c for c in groups if c not in family] or family, sort=True):
        ax.scatter(g[col], 100 * g["eval_accuracy"], color=color, alpha=0.3, s=14)
        points.append((g[col].mean(), 100 * g["eval_accuracy"].mean(),
                       100 * g["eval_accuracy"].std(ddof=1) if len(g) > 1 else None, len(g)))
      points.sort()
      extra = ", ".join(f"{k} {v}" for k, v in key.items()
                        if k not in ("model", "dataset", "variant") and v != "–")
      ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] or 0 for p in points],
                  fmt="o" + style, color=color, capsize=3, markersize=6,
                  label=f"{key.get('model')} {key.get('variant')}"
                  f"{' (' + extra + ')' if extra else ''} ({key.get('dataset')}, "
                  f"{runs_label([p[3] for p in points])})")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.suptitle("Accuracy against cost, with and without 1x1 reductions")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def training_curves(directory: str, runs: pd.DataFrame, path: str) -> str:
  """Training loss and test accuracy against step for every run, coloured by variant."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  labelled = set()
  for _, run in runs.iterrows():
    rows = pd.DataFrame(wd.read_metrics(os.path.join(directory, run["run"], wd.METRICS)))
    if rows.empty:
      continue
    color = COLORS.get(run["variant"])
    label = None if run["variant"] in labelled else run["variant"]
    labelled.add(run["variant"])
    train = rows[rows["split"] == "train"]
    axes[0].plot(train["step"], train["loss"], color=color, alpha=0.6, label=label)
    ev = rows[rows["split"] == "eval"]
    axes[1].plot(ev["step"], 100 * ev["accuracy"], "o-", color=color, alpha=0.6, label=label)
  axes[0].set_yscale("log")
  axes[0].set(xlabel="step", ylabel="training loss (log)")
  axes[1].set(xlabel="step", ylabel="test accuracy (%)")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle("Training curves (one line per run)")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def difference_along_run(frame: pd.DataFrame, title: str, path: str) -> str:
  """An accuracy difference (`along_run.difference_along_run`) and its interval against the
  training step: where along training the verdict holds."""
  fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
  ax.axhline(0, color="gray", lw=1)
  ax.fill_between(frame["step"], frame["low"].astype(float), frame["high"].astype(float),
                  alpha=0.25, label="95% interval (seeds + test set)")
  ax.plot(frame["step"], frame["difference"], "o-", label="mean difference")
  ax.set(xlabel="step", ylabel="accuracy difference (points)", title=title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def accuracy_along_time(tables: dict[str, list[pd.DataFrame]], path: str) -> str:
  """Test accuracy against training time, one line per run, coloured by variant (`tables`:
  variant -> each run's `along_run.evaluations`): at equal wall time, which leads."""
  fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
  for i, (variant, runs) in enumerate(tables.items()):
    color = COLORS.get(variant, f"C{i + 2}")
    for j, table in enumerate(runs):
      ax.plot(table["train_time_s"], 100 * table["eval_accuracy"], "o-", color=color, alpha=0.6,
              label=variant if j == 0 else None)
  ax.set(xlabel="training time (s)", ylabel="test accuracy (%)",
         title="Accuracy against training time (one line per run)")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def time_vs_macs(rows: list[dict], device: str, path: str) -> str:
  """Forward+backward time against MACs, both variants, one marker per batch size (the timed
  rows of `bottleneck.measure.benchmark`)."""
  fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
  markers = dict(zip(sorted({r["batch"] for r in rows}), "os^Dvx"))
  for reduce, color in ((True, "tab:blue"), (False, "tab:orange")):
    for batch, marker in markers.items():
      pts = [r for r in rows if r["reduce"] == reduce and r["batch"] == batch]
      if pts:
        ax.scatter([r["macs"] for r in pts], [r["fwd_bwd_ms"] for r in pts], color=color,
                   marker=marker, label=f"{blocks.variant(reduce)}, batch {batch}")
  # Each dot named, and each block's naive and reduced versions joined (same batch and paths).
  pairs = {}
  for r in rows:
    label = r["name"] + ("" if r.get("ratio") is None else f" r={r['ratio']:g}")
    ax.annotate(label, (r["macs"], r["fwd_bwd_ms"]), textcoords="offset points", xytext=(4, 3),
                fontsize=6, color="dimgray")
    pairs.setdefault((r["name"], r["batch"], r.get("dtype")), []).append(r)
  for pts in pairs.values():
    if len({p["reduce"] for p in pts}) == 2:
      pts = sorted(pts, key=lambda p: p["macs"])
      ax.plot([p["macs"] for p in pts], [p["fwd_bwd_ms"] for p in pts], color="lightgray", lw=0.8,
              zorder=0)
  ax.set(xscale="log", yscale="log", xlabel="MACs per forward (whole batch)",
         ylabel="forward+backward time (ms, median)",
         title=f"Time against multiply-adds on {device}")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def roofline(result: dict, path: str) -> str:
  """GFLOP/s of each timed forward against its arithmetic intensity (FLOP/B, convs as their
  own kernels), under the measured roofs: the matmul peak and the triad bandwidth
  (`bottleneck.measure.roofline.run`'s result)."""
  rows = [r for r in result["rows"] if "error" not in r]
  peak, bw = result["peak_gflops_per_s"], result["bandwidth"]["triad_gb_per_s"]
  fig, ax = plt.subplots(figsize=(8, 5.5), constrained_layout=True)
  xs = [r["conv_intensity"] for r in rows] or [1.0]
  grid = np.geomspace(min(min(xs) / 2, 0.5), max(max(xs) * 2, 4 * peak / bw), 200)
  ax.plot(grid, np.minimum(peak, bw * grid), color="black", lw=1.5,
          label=f"roof: {peak:.0f} GFLOP/s matmul peak, {bw:.1f} GB/s triad")
  ax.axvline(peak / bw, color="gray", ls=":", lw=1, label=f"ridge {peak / bw:.0f} FLOP/B")
  cache = result["bandwidth"].get("cache_triad_gb_per_s")
  if cache:
    ax.plot(grid, np.minimum(peak, cache * grid), color="gray", lw=1, ls="--",
            label=f"roof of a working set in cache: triad {cache:.0f} GB/s")
  styles = {("block", True): ("s", COLORS["reduced"], "block, reduced"
                             ), ("block", False): ("o", COLORS["naive"], "block, naive"),
            ("conv", None): ("x", "tab:green", "one conv alone"),
            ("fragments", None): ("^", "tab:purple", "fragments (same FLOPs)")}
  for (kind, reduce), (marker, color, label) in styles.items():
    pts = [r for r in rows if r["kind"] == kind and r["reduce"] == reduce]
    if not pts:
      continue
    ax.scatter([r["conv_intensity"] for r in pts], [r["fwd_gflops_per_s"] for r in pts],
               marker=marker, color=color, label=label, zorder=3)
    for r in pts:
      name = r["name"].split("/")[-1] if kind == "conv" else r["name"]
      if kind == "conv":
        name = f"{'r' if 'reduced' in r['name'] else 'n'}:{name}"
      ax.annotate(name, (r["conv_intensity"], r["fwd_gflops_per_s"]), fontsize=6, xytext=(3, 2),
                  textcoords="offset points")
  ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP/B, each conv a kernel)",
         ylabel="achieved GFLOP/s (forward, 2 x MACs / median time)",
         title=f"Roofline on {result['device']}, batch {result['batch']}, {result['dtype']}")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7, loc="lower right")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _location_axes(ax, shape: tuple[int, int], stride: int) -> None:
  """Axes of a score map: location indices, each `stride` pixels of the input apart."""
  for axis, n in ((ax.xaxis, shape[1]), (ax.yaxis, shape[0])):
    step = max(1, n // 6)
    axis.set_ticks(range(0, n, step))
  ax.set(xlabel=f"column (x {stride} px)", ylabel=f"row (x {stride} px)")


def heat_maps(canvas: np.ndarray, probs: np.ndarray, placed: list[dict], stride: int,
              out_dir: str) -> list[str]:
  """Sliding-window classification (`bottleneck.studies.fully_conv`): one PNG per class (the canvas
  beside that class's probability map) and an overview."""
  os.makedirs(out_dir, exist_ok=True)
  files = []
  num_classes = probs.shape[-1]
  fig, axes = plt.subplots(2, (num_classes + 2) // 2, figsize=(2.2 * ((num_classes + 2) // 2), 4.6),
                           constrained_layout=True)
  axes = axes.ravel()
  axes[0].imshow(canvas[..., 0], cmap="gray")
  axes[0].set_title(f"canvas {canvas.shape[0]}x{canvas.shape[1]}")
  axes[0].set(xlabel="x (pixels)", ylabel="y (pixels)")
  for k in range(num_classes):
    shown = axes[k + 1].imshow(probs[..., k], vmin=0, vmax=1, cmap="viridis")
    axes[k + 1].set_title(f"class {k}")
    _location_axes(axes[k + 1], probs.shape[:2], stride)
  fig.colorbar(shown, ax=list(axes[1:num_classes + 1]), shrink=0.8, label="probability (softmax)")
  for ax in axes[num_classes + 1:]:
    ax.axis("off")
  fig.suptitle(f"score map {probs.shape[0]}x{probs.shape[1]}x{num_classes} (softmax), "
               f"stride {stride}; digits: " + ", ".join(str(p["label"]) for p in placed))
  files.append(os.path.join(out_dir, "heatmaps.png"))
  fig.savefig(files[-1], dpi=100)
  plt.close(fig)
  for k in range(num_classes):
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3), constrained_layout=True)
    a.imshow(canvas[..., 0], cmap="gray")
    a.set_title("canvas")
    a.set(xlabel="x (pixels)", ylabel="y (pixels)")
    shown = b.imshow(probs[..., k], vmin=0, vmax=1, cmap="viridis")
    b.set_title(f"P(class {k}) per location")
    _location_axes(b, probs.shape[:2], stride)
    fig.colorbar(shown, ax=b, shrink=0.8, label="probability")
    files.append(os.path.join(out_dir, f"class_{k}.png"))
    fig.savefig(files[-1], dpi=80)
    plt.close(fig)
  return files


def photo_score_map(image: np.ndarray, probs: np.ndarray, stride: int, size: int, path: str) -> str:
  """A photo beside its score map (`bottleneck.studies.fully_conv.run_photos`): the most
  probable class at each location, and its probability. Location (i, j) reads the size x size
  window at (i * stride, j * stride); the window of location (0, 0) is outlined."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  top = np.argmax(probs, -1)
  classes, index = np.unique(top, return_inverse=True)
  fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
  a.imshow(image)
  a.add_patch(plt.Rectangle((0, 0), size, size, fill=False, color="yellow", lw=1.5))
  a.set_title(f"input {image.shape[0]}x{image.shape[1]}")
  shown = b.imshow(index.reshape(top.shape), cmap="tab20", vmin=0, vmax=max(19, len(classes)))
  b.set_title(f"top-1 class per location ({len(classes)} distinct)")
  for k, cls in enumerate(classes[:20]):
    b.plot([], [], "s", color=shown.cmap(shown.norm(k)), label=str(cls))
  b.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="class")
  p = c.imshow(probs.max(-1), cmap="viridis")  # its own range: random weights give ~1e-3
  c.set_title("its probability (softmax)")
  fig.colorbar(p, ax=c, shrink=0.8)
  a.set(xlabel="x (pixels)", ylabel="y (pixels)")
  for ax in (b, c):
    _location_axes(ax, probs.shape[:2], stride)
  fig.suptitle(f"score map {probs.shape[0]}x{probs.shape[1]}x{probs.shape[2]}, stride {stride}")
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path
