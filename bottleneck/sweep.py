"""Sweeps declared in configs, as big_vision does.

A config file may define `get_sweep()` returning a list of override dicts, e.g.
`[{"reduce": r, "seed": s} for r in (True, False) for s in (0, 1, 2)]`. Each point runs in
its own subdirectory of the sweep's workdir, named from its overrides (`reduce=True,seed=0`).
Points run in this process one after another, in N worker processes (`parallel`), or as Ray
tasks (`launcher="ray"`); `launcher="print"` prints one shell command per point for another
scheduler (a SLURM array, ...). Finished points are skipped, interrupted ones resume from their
checkpoints, a failing point is recorded in its `error.json` and the others still run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import multiprocessing
import os
import re
import shlex
import sys
import traceback

import ml_collections
from absl import logging

from bottleneck import workdir as wd
from bottleneck.validation import ConfigError

ERROR = "error.json"
LAUNCHERS = ("local", "ray", "print")


@dataclasses.dataclass(frozen=True)
class Point:
  name: str
  overrides: dict
  config: ml_collections.ConfigDict
  workdir: str


def load_config_file(spec: str):
  """(module, config) from `path.py` or `path.py:arg` (the --config syntax)."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise ConfigError(f"config file {path!r} does not exist.")
  name = "bottleneck_config_" + re.sub(r"\W", "_", os.path.abspath(path))
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except ValueError as e:
    raise ConfigError(f"{spec}: {e}") from None
  return module, config


def point_name(overrides: dict) -> str:
  """`{"reduce": True, "seed": 0}` -> "reduce=True,seed=0", safe as a directory name."""
  if not overrides:
    return "default"
  parts = [f"{k}={v}" for k, v in overrides.items()]
  return re.sub(r"[^\w.=,+-]", "_", ",".join(parts))


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict):
  """A copy of `config` with dotted keys set (`"optimizer.learning_rate": 0.01`)."""
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for p in parents:
      if p not in target:
        raise ConfigError(f"sweep override {key!r}: the config has no field {p!r}.")
      target = target[p]
    if leaf not in target:
      raise ConfigError(f"sweep override {key!r}: the config has no field {leaf!r}; it has "
                        f"{', '.join(sorted(target.keys()))}.")
    target[leaf] = value
  return config


def expand(module, config: ml_collections.ConfigDict, workdir: str) -> list[Point]:
  """The sweep's points: one per override dict of `get_sweep()`, or the config alone."""
  sweep = module.get_sweep() if hasattr(module, "get_sweep") else [{}]
  points, names = [], set()
  for overrides in sweep:
    name = point_name(overrides)
    if name in names:
      raise ConfigError(f"the sweep has the point {name!r} twice.")
    names.add(name)
    points.append(Point(name, dict(overrides), apply_overrides(config, overrides),
                        os.path.join(workdir, name)))
  return points


def status(point: Point) -> str:
  if os.path.exists(os.path.join(point.workdir, wd.RESULT)):
    return "done"
  if os.path.exists(os.path.join(point.workdir, ERROR)):
    return "failed"
  return "started" if os.path.exists(os.path.join(point.workdir, wd.CONFIG)) else "new"


def run_point(config_dict: dict, workdir: str) -> dict:
  """Trains one point; on failure writes `error.json` and returns {"error": ...}."""
  from bottleneck import train  # pylint: disable=g-import-not-at-top  # light import for workers
  os.makedirs(workdir, exist_ok=True)
  error_path = os.path.join(workdir, ERROR)
  if os.path.exists(error_path):
    os.remove(error_path)
  try:
    return train.train_and_evaluate(ml_collections.ConfigDict(config_dict), workdir)
  except Exception as e:  # pylint: disable=broad-except  # recorded; the sweep goes on
    error = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    wd.write_json(error_path, error)
    logging.error("point %s failed: %s", workdir, error["error"])
    return error


def command_for(point: Point, config_spec: str) -> str:
  """The shell command that runs `point` alone (for --launcher=print)."""
  flags = [f"--config={config_spec}", f"--workdir={point.workdir}"]
  flags += [f"--config.{k}={v}" for k, v in point.overrides.items()]
  return " ".join([sys.executable, "-m", "experiments.train", *map(shlex.quote, flags)])


def _run_ray(todo: list[Point], address: str | None, cpus_per_point: float):
  try:
    import ray  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConfigError("--launcher=ray needs Ray: pip install -e '.[ray]'") from None
  started_here = not ray.is_initialized()
  if started_here:
    local = {} if address else dict(  # a local Ray sized for small sweeps
        object_store_memory=256 * 1024**2,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    ray.init(address=address, include_dashboard=False, log_to_driver=True, **local)
  try:
    task = ray.remote(num_cpus=cpus_per_point)(run_point)
    refs = [task.remote(p.config.to_dict(), os.path.abspath(p.workdir)) for p in todo]
    return ray.get(refs)
  finally:
    if started_here:
      ray.shutdown()


def run(points: list[Point], *, parallel: int = 1, launcher: str = "local",
        ray_address: str | None = None, config_spec: str = "") -> dict[str, str]:
  """Runs every unfinished point; returns {name: "done" | "failed: ..." | "skipped (done)"}."""
  if launcher not in LAUNCHERS:
    raise ConfigError(f"unknown launcher {launcher!r}; valid: {', '.join(LAUNCHERS)}.")
  if parallel < 1:
    raise ConfigError(f"--parallel={parallel} is invalid; it must be >= 1.")
  summary = {p.name: "skipped (done)" for p in points if status(p) == "done"}
  todo = [p for p in points if p.name not in summary]
  if launcher == "print":
    for p in todo:
      print(command_for(p, config_spec))
    return {**summary, **{p.name: "printed" for p in todo}}
  logging.info("sweep: %d points, %d finished, %d to run", len(points), len(summary), len(todo))
  if launcher == "ray":
    results = _run_ray(todo, ray_address, cpus_per_point=1)
  elif parallel == 1:
    results = []
    for i, p in enumerate(todo):
      logging.info("sweep point %d/%d: %s", i + 1, len(todo), p.name)
      results.append(run_point(p.config.to_dict(), p.workdir))
  else:
    ctx = multiprocessing.get_context("spawn")  # JAX is not fork-safe
    with concurrent.futures.ProcessPoolExecutor(parallel, mp_context=ctx) as pool:
      results = list(pool.map(run_point, [p.config.to_dict() for p in todo],
                              [p.workdir for p in todo]))
  for p, r in zip(todo, results):
    summary[p.name] = f"failed: {r['error']}" if "error" in r else "done"
  return {p.name: summary[p.name] for p in points}


def format_summary(summary: dict[str, str], workdir: str) -> str:
  done = sum(s == "done" or s.startswith("skipped") for s in summary.values())
  lines = [f"sweep in {workdir}: {done}/{len(summary)} points finished"]
  lines += [f"  {name}: {state}" for name, state in summary.items()]
  return "\n".join(lines)
