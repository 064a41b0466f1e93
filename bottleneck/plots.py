"""Plots (matplotlib, PNG): accuracy against cost per variant, and training curves."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import pandas as pd  # pylint: disable=g-import-not-at-top,wrong-import-position

from bottleneck import workdir as wd  # pylint: disable=g-import-not-at-top,wrong-import-position

COLORS = {"reduced": "tab:blue", "naive": "tab:orange"}


def accuracy_vs_cost(runs: pd.DataFrame, path: str) -> str:
  """Test accuracy against MACs and against params; one point per run, mean +- std marked."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  for ax, (col, label) in zip(axes, (("macs", "multiply-adds per image (MACs)"),
                                     ("params", "parameters"))):
    for (model, dataset, variant), g in runs.groupby(["model", "dataset", "variant"]):
      color = COLORS.get(variant)
      ax.scatter(g[col], 100 * g["eval_accuracy"], color=color, alpha=0.4, s=18)
      ax.errorbar(g[col].mean(), 100 * g["eval_accuracy"].mean(),
                  yerr=100 * g["eval_accuracy"].std(ddof=1) if len(g) > 1 else None,
                  fmt="o", color=color, capsize=4, markersize=7,
                  label=f"{model} {variant} ({dataset}, n={len(g)})")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle("Accuracy against cost, with and without 1x1 reductions")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def training_curves(directory: str, runs: pd.DataFrame, path: str) -> str:
  """Training loss and test accuracy against step for every run, coloured by variant."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  labelled = set()
  for _, run in runs.iterrows():
    rows = pd.DataFrame(wd.read_jsonl(os.path.join(directory, run["run"], wd.METRICS)))
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
