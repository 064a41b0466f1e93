"""Sweeps declared in configs, as big_vision does: `get_sweep(arg)` in a config file returns
override dicts, each a point trained in its own subdirectory; the seeds of one config train as
one program (`seeds.train_seeds`). Units run here, in worker processes, as Ray tasks, or as
printed commands for another scheduler; finished points are skipped, interrupted ones resume,
a changed one is refused. docs/training.md, "Sweeps, tables and plots"."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import multiprocessing
import os
import queue as queue_lib
import re
import shlex
import signal
import socket
import sys
import traceback

import ml_collections
from absl import logging

from bottleneck.train import records, run_config, seeds, steps
from bottleneck.util import compat, signals, workdir as wd
from bottleneck.util.errors import ConfigError

ERROR = wd.ERROR
LAUNCHERS = ("local", "ray", "print")
# How often Ray starts a unit again after its node or worker died.
RAY_RETRIES = 2


class Outcome(str):
  """A point's outcome in a sweep's summary: its `kind` and, for "failed", "busy" and
  "interrupted", why (`detail`). It reads as the text the summary prints ("done", "skipped
  (done)", "printed", "failed: why", ...), so it compares and prints as that text."""
  KINDS = ("done", "skipped", "printed", "failed", "busy", "interrupted")
  kind: str
  detail: str

  def __new__(cls, kind: str, detail: str = ""):
    if kind not in cls.KINDS:
      raise ValueError(f"unknown outcome {kind!r}; valid: {', '.join(cls.KINDS)}")
    text = {"done": "done", "skipped": "skipped (done)",
            "printed": "printed"}.get(kind, f"{kind}: {detail}")
    outcome = super().__new__(cls, text)
    outcome.kind, outcome.detail = kind, detail
    return outcome

  @property
  def finished(self) -> bool:
    """Whether the point has its result (trained now, or before)."""
    return self.kind in ("done", "skipped")

  @classmethod
  def of(cls, result: dict) -> Outcome:
    """The outcome of `run_unit`'s dict for a point."""
    for kind in ("error", "busy", "interrupted"):
      if kind in result:
        return cls("failed" if kind == "error" else kind, result[kind])
    return cls("done")


@dataclasses.dataclass(frozen=True)
class Point:
  name: str
  overrides: dict
  config: ml_collections.ConfigDict
  workdir: str


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
    try:
      target[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f"sweep override {key}={value!r}: {e}") from None
  return config


def expand(module, config: ml_collections.ConfigDict, workdir: str, arg: str = "") -> list[Point]:
  """The sweep's points: one per override dict of `get_sweep(arg)` (`arg`: the config's
  argument, as `path.py:arg` gives it; "" without one), or the config alone."""
  sweep = [{}]
  if hasattr(module, "get_sweep"):
    if not inspect.signature(module.get_sweep).parameters:
      raise ConfigError("get_sweep takes the config's argument: def get_sweep(arg: str = \"\").")
    try:
      sweep = module.get_sweep(arg or "")
    except ValueError as e:  # the config's own refusal of an unknown variant
      raise ConfigError(f"get_sweep({arg!r}): {e}") from None
  points, names = [], set()
  for overrides in sweep:
    name = point_name(overrides)
    if name in names:
      raise ConfigError(f"the sweep has the point {name!r} twice.")
    names.add(name)
    points.append(
        Point(name, dict(overrides), apply_overrides(config, overrides),
              os.path.join(workdir, name)))
  return points


def seeds_together(module, arg: str = "") -> bool:
  """Whether a sweep of `module` trains a config's seeds as one program when the command does
  not say: the config's own `seeds_together(arg)` if it declares one (where vmapped seeds are
  slower or train otherwise, e.g. the studies on Fashion-MNIST), else True."""
  declared = getattr(module, "seeds_together", None)
  return True if declared is None else bool(declared(arg or ""))


def run_module(module_name: str, workdir: str, variant: str = "", *, data_dir: str | None = None,
               **run_kwargs) -> tuple[list[Point], dict[str, Outcome]]:
  """The sweep of the config module `module_name` (e.g. "configs.iso_macs": its
  `get_config(variant)` and `get_sweep`) in `workdir`, run (`run`, with `run_kwargs`); the
  datasets read from `data_dir` if given. Returns its points and their outcomes. The one way
  the report and the studies run a config's sweep."""
  module = importlib.import_module(module_name)
  config = module.get_config(variant) if variant else module.get_config()
  if data_dir:
    config.data_dir = data_dir
  points = expand(module, config, workdir, variant)
  return points, run(points, **run_kwargs)


def status(point: Point) -> str:
  """"done", "changed" (it ran under another config), "unreadable" (its result), "failed",
  "started" or "new"."""
  record = run_config.record(point.config)
  result_path = os.path.join(point.workdir, wd.RESULT)
  if os.path.exists(result_path):
    try:
      result = wd.read_result(result_path, required=("config",))
    except wd.CorruptFile:
      return "unreadable"
    return "changed" if records.differences(result["config"], record) else "done"
  config_path = os.path.join(point.workdir, wd.CONFIG)
  if os.path.exists(config_path) and wd.has_checkpoints(point.workdir):
    try:
      if records.differences(wd.read_json(config_path, mapping=True), record):
        return "changed"
    except wd.CorruptFile:
      return "changed"
  if os.path.exists(os.path.join(point.workdir, ERROR)):
    return "failed"
  return "started" if os.path.exists(config_path) else "new"


def _changes(point: Point) -> str:
  """What changed in a "changed" point, for the refusal."""
  for path in (os.path.join(point.workdir, wd.RESULT), os.path.join(point.workdir, wd.CONFIG)):
    try:
      old = wd.read_json(path, mapping=True)
    except (OSError, wd.CorruptFile):
      continue
    old = old.get("config", old) if path.endswith(wd.RESULT) else old
    diff = records.differences(old, run_config.record(point.config))
    if diff:
      return "; ".join(diff[:3]) + (" ..." if len(diff) > 3 else "")
  return "its config.json is unreadable"


def run_point(config_dict: dict, workdir: str, restart: bool = False,
              label: str | None = None) -> dict:
  """Trains one point; on failure writes `error.json` and returns {"error": ...}; if another
  process holds the point's directory, returns {"busy": ...} and writes nothing."""
  from bottleneck.train import loop
  try:
    _clear_error(workdir)
    return loop.train_and_evaluate(ml_collections.ConfigDict(config_dict), workdir, restart=restart,
                                   label=label)
  except wd.WorkdirBusy as e:
    logging.warning("point %s: %s", workdir, e)
    return {"busy": str(e)}
  except Exception as e:  # recorded; the sweep goes on
    return _record_error([workdir], e)


def _clear_error(workdir: str) -> None:
  """Removes a point's `error.json` of an earlier try (under its lock: only the lock's holder
  touches it; raises `wd.WorkdirBusy` if another process holds it)."""
  with wd.lock(workdir):
    if os.path.exists(os.path.join(workdir, ERROR)):
      os.remove(os.path.join(workdir, ERROR))


def _record_error(workdirs: list[str], e: Exception) -> dict:
  """{"error", "traceback"} of the exception being handled, logged and written to each
  point's `error.json` (an unusable point directory is passed over: the summary still says
  why)."""
  error = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
  logging.error("%s %s failed: %s", "point" if len(workdirs) == 1 else "points",
                ", ".join(workdirs), error["error"])
  for w in workdirs:
    try:
      wd.write_json(os.path.join(w, ERROR), error)
    except OSError:
      pass
  return error


def run_unit(config_dicts: list[dict], workdirs: list[str], restarts: list[bool],
             label: str | None = None) -> list[dict]:
  """Trains a unit of the sweep: one point (`run_point`), or the seeds of one config as one
  program (`seeds.train_seeds`). Seeds that cannot train together (`steps.SeedsApart`, or one
  of their directories held by another process) run one at a time instead; a failure of the
  unit is recorded in each point's `error.json`. One outcome per point, in order."""
  if len(config_dicts) == 1:
    return [run_point(config_dicts[0], workdirs[0], restarts[0], label)]
  try:
    for w in workdirs:
      _clear_error(w)
    return seeds.train_seeds([ml_collections.ConfigDict(c) for c in config_dicts], workdirs,
                             restarts=restarts, label=label)
  except steps.SeedsApart as e:
    logging.warning("%s: %s; they run one at a time", label or workdirs, e)
    restarts = [False] * len(workdirs)  # any old run was set aside before they trained
  except wd.WorkdirBusy as e:
    logging.warning("%s: %s; they run one at a time", label or workdirs, e)
  except Exception as e:  # recorded; the sweep goes on
    return [_record_error(workdirs, e)] * len(workdirs)
  return [run_point(c, w, r, label) for c, w, r in zip(config_dicts, workdirs, restarts)]


def units(todo: list[Point], seeds_together: bool) -> list[list[Point]]:
  """The points to run, in units: with `seeds_together`, points whose configs differ only in
  their `seed` form one unit (trained as one program, `run_unit`); every other point is a
  unit of its own. In sweep order."""
  keyed: dict[str, list[Point]] = {}
  out = []
  for p in todo:
    if not seeds_together:
      out.append([p])
      continue
    record = {**run_config.record(p.config), "seed": None}
    key = json.dumps(record, sort_keys=True, default=repr)
    if key not in keyed:
      keyed[key] = []
      out.append(keyed[key])
    keyed[key].append(p)
  return out


def unit_label(unit: list[Point]) -> str:
  """A unit's name in progress lines: the point's, or its points' common overrides and seeds."""
  if len(unit) == 1:
    return unit[0].name
  common = {k: v for k, v in unit[0].overrides.items() if k != "seed"}
  seeds = ",".join(str(p.config.seed) for p in unit)
  return f"{point_name(common) if common else 'default'} seeds={seeds}"


def command_for(point: Point, config_spec: str, restart: bool = False) -> str:
  """The shell command that runs `point` alone (for --launcher=print)."""
  flags = [f"--config={config_spec}", f"--workdir={point.workdir}"]
  flags += ["--restart"] if restart else []
  flags += [f"--config.{k}={v}" for k, v in point.overrides.items()]
  return " ".join([sys.executable, "-m", "experiments.train", *map(shlex.quote, flags)])


def _on_node(args: tuple, label: str) -> tuple[str, list[dict]]:
  """`run_unit` as a Ray task: the Ray node it ran on, and its outcomes."""
  import ray
  return ray.get_runtime_context().get_node_id(), run_unit(*args, label)


def _start_ray(ray, address: str | None) -> None:
  """`ray.init`: without an address (the flag, or Ray's own RAY_ADDRESS) a Ray of its own,
  "local", sized for small sweeps (left to itself, ray.init would join a cluster already running
  here); with one, the cluster there, or one error line: ray.init waits for ever on a port that
  nothing listens on, and raises RuntimeError where something else answers."""
  address = address or os.environ.get("RAY_ADDRESS") or None
  if not address:
    ray.init(address="local", include_dashboard=False, log_to_driver=True,
             object_store_memory=256 * 1024**2,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    return
  host, colon, port = address.split("://", 1)[-1].rpartition(":")
  try:
    if colon and port.isdigit():  # "auto" and the like are Ray's to look up
      socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    ray.init(address=address, include_dashboard=False, log_to_driver=True)
  except (OSError, RuntimeError) as e:  # ConnectionError is an OSError
    why = getattr(e, "strerror", None) or str(e).splitlines()[0]
    raise ConfigError(
        f"--ray_address={address}: could not join a Ray cluster there ({why}); "
        "start one (`ray start --head`) or give the address its head printed.") from None


def _run_ray(todo: list[list[Point]], restart: set[str], address: str | None,
             cpus_per_point: float) -> dict[str, dict]:
  """Runs each unit of `todo` as a Ray task; {point name: outcome}. A unit whose node dies is
  started again elsewhere (Ray's retries; it resumes from its checkpoint), and one that still
  fails is a failed point, not the sweep's end: the others' results are kept and a rerun of
  the sweep finishes it."""
  try:
    import ray
  except ImportError:
    raise ConfigError("--launcher=ray needs Ray: pip install -e '.[ray]'") from None
  started_here = not ray.is_initialized()
  if started_here:
    _start_ray(ray, address)
  try:
    task = ray.remote(num_cpus=cpus_per_point, max_retries=RAY_RETRIES)(_on_node)
    units = {task.remote(_unit_args(unit, restart), unit_label(unit)): unit for unit in todo}
    outcome, pending = {}, list(units)
    while pending:
      done, pending = ray.wait(pending, num_returns=1)
      unit = units[done[0]]
      try:
        node, results = ray.get(done[0])
        logging.info("sweep: %s ran on Ray node %s", unit_label(unit), node)
      except Exception as e:  # noqa: BLE001  # its node died and the retries did too
        why = f"its Ray task failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        logging.error("sweep: %s: %s; a rerun resumes it", unit_label(unit), why)
        results = [{"error": why}] * len(unit)
      outcome.update(zip([p.name for p in unit], results))
    return outcome
  finally:
    if started_here:
      ray.shutdown()


# --- local worker processes ------------------------------------------------------------------


def _unit_args(unit: list[Point], restart: set[str]) -> tuple[list, list, list]:
  """`run_unit`'s arguments for a unit (absolute paths: Ray workers start elsewhere)."""
  return ([p.config.to_dict() for p in unit], [os.path.abspath(p.workdir) for p in unit],
          [p.name in restart for p in unit])


def _own_process_group() -> None:
  """A worker leaves the terminal's process group: the terminal's Ctrl-C goes to the sweep,
  which passes it on once. A worker of a sweep started with SIGINT ignored (a background job
  of a non-interactive shell; the disposition survives the spawn) would ignore that signal
  too and stop only when killed; out of the terminal's reach, it listens again."""
  os.setpgrp()
  if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _worker(names: list[str], args: tuple, label: str, results, parent_pid: int,
            verbosity: int) -> None:
  _own_process_group()
  signals.end_with_parent(parent_pid)  # a killed sweep cannot say so
  from absl import flags
  flags.FLAGS.mark_as_parsed()  # the sweep parsed them: no "logging before flag parsing"
  compat.quiet_orbax()
  logging.set_verbosity(verbosity)
  try:
    outcomes = run_unit(*args, label=label)
  except KeyboardInterrupt as e:
    outcomes = [{"interrupted": str(e) or "interrupted"}] * len(names)
  for name, result in zip(names, outcomes):
    results.put((name, {k: v for k, v in result.items() if k in ("error", "busy", "interrupted")}))


def _run_local(todo: list[list[Point]], restart: set[str], parallel: int) -> dict[str, dict]:
  """Runs the units of `todo` in up to `parallel` worker processes (one per unit);
  {point name: outcome}."""
  ctx = multiprocessing.get_context("spawn")  # JAX is not fork-safe
  results = ctx.Queue()
  waiting, running, outcome = list(todo), {}, {}

  def collect(block: bool) -> None:
    try:
      name, r = results.get(timeout=0.5) if block else results.get_nowait()
    except queue_lib.Empty:
      return
    outcome[name] = r

  try:
    with signals.CtrlC("each running point saves a checkpoint, then the sweep stops") as ctrl_c:
      while (waiting or running) and not ctrl_c.pressed:
        while waiting and len(running) < parallel:
          unit = waiting.pop(0)
          label = unit_label(unit)
          logging.info("sweep: starting %s (%d running, %d waiting)", label,
                       len(running) + 1, len(waiting))
          proc = ctx.Process(
              target=_worker,
              args=([p.name for p in unit], _unit_args(unit, restart), label, results, os.getpid(),
                    logging.get_verbosity()))
          proc.start()
          running[label] = (proc, [p.name for p in unit])
        collect(block=True)
        for label, (proc, names) in list(running.items()):
          if all(n in outcome for n in names) or not proc.is_alive():
            proc.join(timeout=60)
            while True:  # what the worker put in the queue before it ended
              before = len(outcome)
              collect(block=False)
              if len(outcome) == before:
                break
            for name in names:
              if name not in outcome:
                outcome[name] = {
                    "error": f"its worker process died (exit code "
                             f"{proc.exitcode})"
                }
            del running[label]
    # A signal counts even when it came as the last points finished: the sweep was asked to
    # stop, and a caller (the ablation study runs several sweeps) must not go on.
    interrupted = bool(ctrl_c.pressed)
  except KeyboardInterrupt:  # a second signal
    interrupted = True
  if interrupted:
    for proc, _ in running.values():  # each finishes its in-flight checkpoint, then stops
      os.kill(proc.pid, signal.SIGINT)
    for proc, _ in running.values():
      proc.join(timeout=120)
      if proc.is_alive():
        proc.terminate()
    raise signals.Interrupted(
        "sweep interrupted: every running point stopped after its checkpoint; rerun the same "
        "command to resume." if running or waiting else
        "sweep interrupted as its last points finished: every result is saved; rerun the same "
        "command to go on.")
  return outcome


def run(points: list[Point], *, parallel: int = 1, launcher: str = "local",
        ray_address: str | None = None, config_spec: str = "", rerun_changed: bool = False,
        seeds_together: bool = True) -> dict[str, Outcome]:
  """Runs every unfinished point; returns {name: Outcome} ("done", "skipped (done)", "failed:
  ...", "busy: ...", "interrupted: ...", or "printed" by the print launcher). Points that ran
  under another config are refused (ConfigError naming them) unless `rerun_changed`: their
  old runs are set aside and they run again. With `seeds_together`, points that differ only in
  their seed train as one program (`units`)."""
  if launcher not in LAUNCHERS:
    raise ConfigError(f"unknown launcher {launcher!r}; valid: {', '.join(LAUNCHERS)}.")
  if parallel < 1:
    raise ConfigError(f"--parallel={parallel} is invalid; it must be >= 1.")
  if ray_address and launcher != "ray":  # it would be ignored
    raise ConfigError(f"--ray_address={ray_address} is for --launcher=ray; add it, or leave "
                      "--ray_address out.")
  if not points:  # nothing to run, and no sweep directory to lock (not the current one)
    return {}
  if launcher == "print":
    return _run(points, parallel, launcher, ray_address, config_spec, rerun_changed, False)
  with wd.lock(os.path.dirname(points[0].workdir), "the sweep's --workdir"):
    return _run(points, parallel, launcher, ray_address, config_spec, rerun_changed, seeds_together)


def _run(points, parallel, launcher, ray_address, config_spec, rerun_changed, seeds_together):
  states = {p.name: status(p) for p in points}
  changed = [p for p in points if states[p.name] == "changed"]
  if changed and not rerun_changed:
    raise ConfigError(
        f"{len(changed)} sweep point(s) ran under another config than the sweep's now: "
        + ", ".join(f"{p.name} ({_changes(p)})" for p in changed[:4])
        + (" ..." if len(changed) > 4 else "")
        + ". Rerun with --rerun_changed to set their old runs aside (nothing is deleted) and "
        "run them again, or use another --workdir.")
  for p in points:
    if states[p.name] == "unreadable":
      logging.warning("point %s: its %s is unreadable; it is recomputed", p.name, wd.RESULT)
  summary = {p.name: Outcome("skipped") for p in points if states[p.name] == "done"}
  todo = [p for p in points if p.name not in summary]
  restart = {p.name for p in changed}
  if launcher == "print":
    for p in todo:
      print(command_for(p, config_spec, p.name in restart))
    return {**summary, **{p.name: Outcome("printed") for p in todo}}
  logging.info("sweep: %d points, %d finished, %d to run", len(points), len(summary), len(todo))
  todo_units = units(todo, seeds_together)
  if launcher == "ray":
    results = _run_ray(todo_units, restart, ray_address, cpus_per_point=1)
  elif parallel == 1 or len(todo_units) <= 1:
    results = {}
    # A training stops itself on a signal (loop.Interrupted); one that lands between trainings
    # stops the sweep after the unit it is in.
    with signals.CtrlC("the sweep stops after this point") as ctrl_c:
      for i, unit in enumerate(todo_units):
        if ctrl_c.pressed:
          raise signals.Interrupted(
              f"sweep interrupted ({ctrl_c.pressed}) after {i} of {len(todo_units)} units; "
              "every finished point is saved. Rerun the same command to resume.")
        label = unit_label(unit)
        logging.info("sweep unit %d/%d: %s", i + 1, len(todo_units), label)
        results.update(
            zip([p.name for p in unit],
                run_unit(*_unit_args(unit, restart), label=label if len(unit) > 1 else None)))
      if ctrl_c.pressed:
        raise signals.Interrupted(
            f"sweep interrupted ({ctrl_c.pressed}) as its last point finished: every result is "
            "saved; rerun the same command to go on.")
  else:
    results = _run_local(todo_units, restart, parallel)
  for p in todo:
    summary[p.name] = Outcome.of(results[p.name])
  return {p.name: summary[p.name] for p in points}


def format_summary(summary: dict[str, Outcome], workdir: str) -> str:
  done = sum(s.finished for s in summary.values())
  lines = [f"sweep in {workdir}: {done}/{len(summary)} points finished"]
  lines += [f"  {name}: {state}" for name, state in summary.items()]
  return "\n".join(lines)
