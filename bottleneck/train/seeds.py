"""Seeds of one config trained as one program (`train_seeds`): their states stacked on a leading
axis and the steps `jax.vmap`-ed (`steps.Together`), one compile for all of them, each run still
with its own workdir (the sweep's default for a config's seeds; docs/training.md)."""

from __future__ import annotations

import contextlib
import os

import jax
import ml_collections

from bottleneck.train import loop, records, run_config, rundir
from bottleneck.train.rundir import Member
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError


def train_seeds(configs: list[ml_collections.ConfigDict], workdirs: list[str], *,
                restarts: list[bool] | None = None, label: str | None = None) -> list[dict]:
  """Trains configs that differ only in their `seed` as one program, the seeds stacked on a
  leading axis (`jax.vmap`; see `Together`); returns their results in order.

  Each run keeps its own initialisation, data order, workdir, checkpoints, metrics and
  result.json, equal to those of training it alone (`train_and_evaluate`) to within float
  rounding; a finished one is returned as it is, and `restarts[i]` sets run i's previous run
  aside as `restart` does. The compile, the model's analysis and the
  per-step overhead are paid once for all of them, and a run's `train_time_s` is its share of
  the wall time. Raises SeedsApart when the seeds cannot go on together (train each alone
  then), ConfigError when the configs differ in more than the seed, WorkdirBusy when another
  process holds one of the workdirs."""
  if len(configs) != len(workdirs) or not configs:
    raise ConfigError(f"train_seeds: {len(configs)} configs for {len(workdirs)} workdirs.")
  for c in configs:
    run_config.validate(c)
  recorded = [run_config.record(c) for c in configs]
  for c, r in zip(configs[1:], recorded[1:]):
    diff = records.differences({**recorded[0], "seed": 0}, {**r, "seed": 0})
    if diff:
      raise ConfigError(f"only runs that differ in their seed train together; seed {c.seed} "
                        f"also differs in {'; '.join(diff[:3])}.")
  seeds = [c.seed for c in configs]
  if len(set(seeds)) < len(seeds) or len(set(map(os.path.abspath, workdirs))) < len(workdirs):
    raise ConfigError(f"train_seeds: each run needs its own seed and workdir; got seeds "
                      f"{seeds} and workdirs {workdirs}.")
  owner = jax.process_index() == 0
  with contextlib.ExitStack() as locks:
    if owner:
      for w in workdirs:
        locks.enter_context(wd.lock(w))
    restarts = restarts or [False] * len(configs)
    results = [
        rundir.prepare_workdir(w, r, restart=s) if owner else None
        for w, r, s in zip(workdirs, recorded, restarts)
    ]
    for w, r in zip(workdirs, results):
      if r is not None:
        rundir.say_finished(w)
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
      trained = loop.train([Member(configs[i], recorded[i], workdirs[i]) for i in todo], owner,
                           label or f"seeds {','.join(str(configs[i].seed) for i in todo)}")
      for i, r in zip(todo, trained):
        results[i] = r
  return results
