r"""How fast a training config trains here, end to end, against PyTorch eager and an earlier
checkout, timed side by side in one run (`bottleneck.train.throughput`).

  python -m experiments.throughput --config=configs/fashion_inception.py:reduced
  git worktree add /tmp/before 7690e68   # the code before issue 23's changes, for example
  python -m experiments.throughput --config=configs/fashion_inception.py:reduced \
      --baseline=/tmp/before --out=runs/throughput

Prints one row per contender (ms per step, examples/s, time per step against this checkout's,
the median of the rounds' ratios); with --out, writes throughput.json and throughput.md there.
About 3 minutes for the Fashion-MNIST config on 2 cores with every contender.
"""

import contextlib
import os
import signal
import sys

import pandas as pd
from absl import flags
from ml_collections import config_flags

from bottleneck.analysis import markdown
from bottleneck.data import pipeline
from bottleneck.train import run_config, throughput
from bottleneck.util import cli, env, errors, validation, workdir as wd

config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_BASELINE = flags.DEFINE_string(
    "baseline", None, "An earlier checkout of this repository to "
    "time beside this one (its own pipeline and train step).")
_TORCH = flags.DEFINE_bool("torch", True, "Time the PyTorch eager twin of the step.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Rounds; every contender is timed once per round.")
_STEPS = flags.DEFINE_integer("steps", 20, "Training steps per contender per round.")
_OUT = flags.DEFINE_string("out", None, "Directory for throughput.json and throughput.md.")
_WORKERS = flags.DEFINE_list(
    "workers", [], "Counts of data workers (data.workers) to time the training loop with, each "
    "a contender of its own; with --pipeline_only, the counts the input pipeline is timed with.")
_PIPELINE_ONLY = flags.DEFINE_bool(
    "pipeline_only", False, "Time the input pipeline alone (no training step), with each count "
    "of --workers (default 0,1,2).")


def main(argv):
  del argv
  c = flags.FLAGS.config
  run_config.validate(c)
  validation.positive_int(_ROUNDS.value, "--rounds", "throughput")
  validation.positive_int(_STEPS.value, "--steps", "throughput")
  if _BASELINE.value and not throughput.is_checkout(_BASELINE.value):
    raise errors.ConfigError(f"--baseline={_BASELINE.value!r} is not a checkout of this "
                             "repository (no bottleneck/train/loop.py or, before the "
                             "folders, bottleneck/train.py there); make one with "
                             "`git worktree add DIR COMMIT`.")
  workers = _workers()
  if _TORCH.value and not _PIPELINE_ONLY.value:  # PyTorch, or a clear error before any timing
    __import__("bottleneck.measure.torch_peer")
  # Held for the run: a second run into the same --out at once is refused, naming this one.
  with wd.lock(_OUT.value, "--out") if _OUT.value else contextlib.nullcontext():
    if _PIPELINE_ONLY.value:
      _measure_pipeline(c, workers or [0, 1, 2])
    else:
      _measure(c, workers)


def _workers() -> list[int]:
  """--workers as whole numbers; one error line naming a bad one."""
  out = []
  for w in _WORKERS.value:
    try:
      out.append(validation.whole(int(w), "--workers", "throughput"))
    except ValueError:
      raise errors.ConfigError(f"throughput: --workers={w!r} is invalid; it must be whole "
                               "numbers >= 0, e.g. --workers=0,1,2.") from None
  return out


def _measure_pipeline(c, workers: list[int]) -> None:
  """The input pipeline alone: images/s with each count of workers (`throughput.pipeline_rates`)."""
  from bottleneck.train import builders
  split = pipeline.config_splits(c, (c.train_split,), in_memory=True)[c.train_split]
  pipeline.check_batch_size(split, c.batch_size)
  channels = builders.build_model(c, split.num_classes, initialise=False).in_channels
  rows = throughput.pipeline_rates(c, split, channels, workers, rounds=_ROUNDS.value,
                                   steps=_STEPS.value)
  made_by = markdown.command("experiments.throughput", *sys.argv[1:])
  frame = pd.DataFrame(rows)[["workers", "images_per_s", "speedup_vs_first"]]
  print(frame.to_string(index=False, float_format="%.2f"))
  if _OUT.value:
    wd.write_json(os.path.join(_OUT.value, "pipeline.json"), {
        "rows": rows, "machine": env.environment(), "command": made_by,
        "config": run_config.record(c)
    })
    markdown.write_markdown(os.path.join(_OUT.value, "pipeline.md"), "The input pipeline alone",
                            made_by,
                            frame.to_markdown(index=False, floatfmt=".2f") + "\n")


def _measure(c, workers: list[int]) -> None:
  split = pipeline.config_splits(c, (c.train_split,), in_memory=False)[c.train_split]
  pipeline.check_batch_size(split, c.batch_size)  # here, not in every contender
  total = c.num_train_steps or max(1, round(c.num_epochs * (len(split) // c.batch_size)))
  specs = throughput.contender_specs(c, split.source.dataset_info.data_dir, split.num_classes,
                                     total, baseline=_BASELINE.value, torch=_TORCH.value,
                                     workers=tuple(workers))
  # SIGTERM (a scheduler, `timeout`) as Ctrl-C: the contenders are stopped, not left behind.
  previous = signal.signal(signal.SIGTERM, _interrupt)
  try:
    rows = throughput.measure(specs, rounds=_ROUNDS.value, steps=_STEPS.value,
                              batch_size=c.batch_size)
  except KeyboardInterrupt as e:
    raise KeyboardInterrupt(
        f"interrupted{f' ({e})' if str(e) else ''}: the contenders are stopped; nothing was "
        "written.") from None
  finally:
    signal.signal(signal.SIGTERM, previous)
  made_by = markdown.command("experiments.throughput", *sys.argv[1:])
  _write(rows, None, made_by, c)  # the timings, before the roofline's own measurements
  roof = throughput.place_on_roofline(c, split.num_classes, rows)
  _write(rows, roof, made_by, c)


def _interrupt(signum, frame):
  del frame
  raise KeyboardInterrupt(signal.Signals(signum).name)


def _write(rows: list[dict], roof: dict | None, made_by: str, c) -> None:
  """Prints the timings (`roof` None) or the roofline; with --out, writes both files."""
  columns = ["contender", "ms_per_step", "examples_per_s", "time_vs_first"]
  roof_line = ""
  if roof:
    columns += ["gflops", "of_attainable"]
    roof_line = (f"Roofline: {roof['step_gflop']:.3g} GFLOP per step (3 x 2 x MACs), intensity "
                 f"{roof['intensity']:.1f} FLOP/B; matmul peak {roof['peak_gflops']:.0f} "
                 f"GFLOP/s, triad {roof['triad_gb_per_s']:.1f} GB/s: attainable "
                 f"{roof['attainable_gflops']:.0f} GFLOP/s ({roof['bound']}-bound).")
  frame = pd.DataFrame(rows)[columns]
  if roof is None:
    print(frame.to_string(index=False, float_format="%.2f"))
  else:
    print(roof_line + " Achieved: " + "; ".join(
        f"{r['contender']} {r['gflops']:.1f} GFLOP/s ({r['of_attainable']:.0%})" for r in rows))
  if _OUT.value:
    wd.write_json(
        os.path.join(_OUT.value, "throughput.json"), {
            "rows": rows, "roofline": roof, "machine": env.environment(), "command": made_by,
            "config": run_config.record(c)
        })
    markdown.write_markdown(os.path.join(_OUT.value, "throughput.md"),
                            "Training throughput, side by side", made_by,
                            frame.to_markdown(index=False, floatfmt=".2f") + f"\n\n{roof_line}\n")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
