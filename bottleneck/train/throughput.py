"""Training throughput end to end, side by side: this checkout (with each count of data
workers asked for), an earlier checkout, PyTorch eager, each contender in a process of its own,
timed in interleaved rounds (`measure`); and the input pipeline alone (`pipeline_rates`). The
contenders and how they are timed: docs/benchmarks.md, "The training loop end to end"; the
data workers: docs/training.md, "The input pipeline"."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout
WARMUP_STEPS = 3

# --- the contender's side: one process, commands on stdin, answers on stdout ------------------


def _overlay(config, values: dict, prefix: str = "") -> None:
  """Sets the fields of `values` (nested dicts) that `config` has; a checkout older than a
  field ignores it (it computes what the field's default does)."""
  for key, value in values.items():
    if key not in config:
      continue
    if isinstance(value, dict) and hasattr(config[key], "keys"):
      _overlay(config[key], value, f"{prefix}{key}.")
    else:
      config[key] = value


def is_checkout(tree: str) -> bool:
  """Whether `tree` is a checkout of this repository, in today's layout or the one before the
  library's folders (modules at the top of bottleneck/, a configs/default.py of its own)."""
  return any(
      os.path.isfile(os.path.join(tree, "bottleneck", *p))
      for p in (("train", "loop.py"), ("train.py",)))


def _checkout_modules():
  """(builders, the module of the train step, run_config) of the checkout this contender
  imports, in either layout; a checkout before the folders keeps its default config in
  configs/default.py (loaded by path, from that checkout) and, before a7d2a0c, built models in
  train.py."""
  try:
    from bottleneck.train import builders, run_config
  except ImportError:
    import runpy

    import bottleneck
    from bottleneck import run_config, train
    try:
      from bottleneck import builders
    except ImportError:
      builders = train
    if not hasattr(run_config, "default_config"):
      root = os.path.dirname(os.path.dirname(os.path.abspath(bottleneck.__file__)))
      path = os.path.join(root, "configs", "default.py")
      run_config.default_config = runpy.run_path(path)["get_config"]
    return builders, train, run_config
  try:
    from bottleneck.train import steps
  except ImportError:  # the first checkouts in folders kept the steps in the loop
    from bottleneck.train import loop as steps
  return builders, steps, run_config


def _jax_setup(spec: dict):
  """The checkout's pipeline, model, optimizer and compiled step; returns run(start, n)."""
  import functools

  import jax
  import tensorflow_datasets as tfds
  from flax import nnx

  builders, steps, run_config = _checkout_modules()
  from bottleneck.data import pipeline
  config = run_config.default_config()
  _overlay(config, spec["config"])
  source = tfds.builder_from_directory(spec["data"]).as_data_source(split=config.train_split)
  split = pipeline.Split(config.train_split, source, spec["num_classes"])
  in_memory = spec["config"].get("data", {}).get("in_memory_mb", 0)
  if in_memory and hasattr(split, "in_memory"):
    split = split.in_memory(int(in_memory * 2**20))
  model = builders.build_model(config, spec["num_classes"])
  fields = set(pipeline.Preprocess.__dataclass_fields__)
  preprocess = pipeline.Preprocess(image_size=config.image_size, channels=model.in_channels,
                                   **{k: v for k, v in config.data.items() if k in fields})
  # A checkout that normalises on the device has its batches of uint8 images looked up by the
  # step, as its training loop does (`steps.images`).
  on_device = {}
  if "normalise" in fields:
    preprocess = dataclasses.replace(preprocess, normalise=False)
    on_device = {"pixels": preprocess.pixel_table()}
  batches = pipeline.Batches(split, config.batch_size, preprocess, config.seed)
  schedule = builders.make_schedule(config, batches.steps_per_epoch, spec["total_steps"])
  optimizer = nnx.Optimizer(model, builders.make_optimizer(config, schedule), wrt=nnx.Param)
  (model_def, model_state), (opt_def, opt_state) = nnx.split(model), nnx.split(optimizer)
  step = jax.jit(
      functools.partial(steps.train_step, model_def, opt_def, jax.numpy.dtype(config.dtype),
                        **on_device), donate_argnums=0,
      compiler_options=run_config.model_paths(config).compiler_options("config"))
  state = [(model_state, opt_state)]
  batch_of = _batch_source(batches, spec["config"].get("data", {}).get("workers"))

  def run(start: int, n: int) -> float:
    pending = None
    for s in range(start, start + n):
      state[0], metrics = step(state[0], batch_of(s))
      if pending is not None:  # two steps in flight, as the training loop keeps them
        jax.block_until_ready(pending)
      pending = metrics["loss"]
    jax.block_until_ready(state[0])
    return float(pending)

  return run


def _batch_source(batches, workers: int | None):
  """step -> batch: made by `data.workers` processes ahead of the steps where the checkout has
  them (`bottleneck.data.loader`; unset: the default the training loop takes), else in this
  process. The steps asked for run on, so one feed serves every round."""
  try:
    import jax

    from bottleneck.data import loader
  except ImportError:  # a checkout from before the data workers
    return batches.train_batch
  if workers is None:
    in_memory = getattr(batches.split, "images", None) is not None
    try:
      workers = loader.default_workers(jax.default_backend(), in_memory=in_memory)
    except TypeError:  # a checkout whose default did not ask where the split is
      workers = loader.default_workers(jax.default_backend())
  if not workers:
    return batches.train_batch
  make, feeding = loader.StepBatches([batches]), {"next": None, "feed": None}

  def batch_of(step: int) -> dict:
    if feeding["next"] != step:
      if feeding["feed"] is not None:
        feeding["feed"].close()
      feeding["feed"] = loader.feed(make, step, step + 10**7, workers)
    feeding["next"] = step + 1
    return next(feeding["feed"])

  return batch_of


def pipeline_rates(config, split, channels: int, workers: list[int], *, rounds: int, steps: int,
                   say=print) -> list[dict]:
  """The input pipeline alone (`loader.feed` of a config's training batches as the training
  loop makes them, uint8 images left to the device to normalise; no step): for each count of
  `workers`, images/s over `steps` batches, in `rounds` rounds taken in turn; medians, and each
  round's ratio to the first count's. `channels`: the model's input channels. The clock starts
  once the workers have started and the batches they made ahead while the first was awaited
  are taken (`warm_up`), and it times whole rounds of the workers (`timed_batches`): it times
  making batches, not a queue."""
  from bottleneck.data import loader, pipeline
  preprocess = pipeline.Preprocess.from_config(config, channels, normalise=False)
  make = loader.StepBatches([pipeline.Batches(split, config.batch_size, preprocess, config.seed)])
  times, start = {w: [] for w in workers}, 0
  rate = lambda w, seconds: timed_batches(w, steps) * config.batch_size / seconds  # images/s
  for r in range(rounds):
    for w in workers:
      warm_up = 1 + w * (loader.BUFFER + 1)  # the first batch, and what was made meanwhile
      feed = loader.feed(make, start, start + warm_up + timed_batches(w, steps), w)
      for _ in range(warm_up):
        next(feed)
      t = time.perf_counter()
      for _ in range(timed_batches(w, steps)):
        next(feed)
      times[w].append(time.perf_counter() - t)
      feed.close()
      start += warm_up + timed_batches(w, steps)
    say(f"round {r + 1}/{rounds}: "
        + ", ".join(f"{w} workers {rate(w, times[w][-1]):.0f} images/s" for w in workers))
  rows = []
  for w in workers:
    rates = [rate(w, t) for t in times[w]]
    ratios = [rate(w, t) / rate(workers[0], f) for t, f in zip(times[w], times[workers[0]])]
    rows.append({
        "workers": w, "rounds": rounds, "steps": timed_batches(w, steps),
        "images_per_s": statistics.median(rates), "speedup_vs_first": statistics.median(ratios),
        "round_images_per_s": rates
    })
  return rows


def timed_batches(workers: int, steps: int) -> int:
  """The batches `pipeline_rates` times for a count of workers: `steps`, or with workers at
  least 4 of their rounds and whole rounds. Workers started together finish their batches
  together, so batches come in bursts of `workers`: a window shorter than a round times either
  the burst (as if free: 15 workers on 6 batches) or the wait."""
  if not workers:
    return steps
  return -(-max(steps, 4 * workers) // workers) * workers


def _torch_setup(spec: dict):
  """PyTorch eager's twin of this checkout's model and optimizer on this checkout's batches."""
  import numpy as np
  import torch

  builders, _, run_config = _checkout_modules()
  from bottleneck.data import pipeline
  from bottleneck.measure import torch_peer

  config = run_config.default_config()
  _overlay(config, spec["config"])
  splits = pipeline.config_splits(config, (config.train_split,))
  model = builders.build_model(config, spec["num_classes"])
  # On the device ours runs on: a GPU when JAX computes there, set up as XLA computes ours
  # there (`torch_peer.time_peer`).
  where = torch_peer.device()
  if where == "cuda":
    torch_peer.gpu_settings()
  peer = torch_peer.from_nnx(model).to(where)
  peer.train()
  preprocess = pipeline.Preprocess.from_config(config, model.in_channels)
  batches = pipeline.Batches(splits[config.train_split], config.batch_size, preprocess, config.seed)
  schedule = builders.make_schedule(config, batches.steps_per_epoch, spec["total_steps"])
  lrs = [float(v) for v in np.asarray(schedule(np.arange(spec["total_steps"])))]
  o = config.optimizer
  if o.name == "adamw":
    opt = torch.optim.AdamW(peer.parameters(), lr=lrs[0], weight_decay=o.weight_decay)
  else:
    opt = torch.optim.SGD(peer.parameters(), lr=lrs[0], momentum=o.momentum,
                          nesterov=bool(o.get("nesterov")), weight_decay=o.weight_decay)

  def run(start: int, n: int) -> float:
    for s in range(start, start + n):
      batch = batches.train_batch(s)
      x = torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).contiguous().to(where)
      for group in opt.param_groups:
        group["lr"] = lrs[min(s, len(lrs) - 1)]  # optax's schedule holds its last value
      opt.zero_grad(set_to_none=True)
      labels = torch.from_numpy(batch["label"]).long().to(where)
      loss = torch.nn.functional.cross_entropy(peer(x), labels)
      loss.backward()
      opt.step()
    return float(loss.detach())  # waits for the GPU, if any

  return run


def contender_main() -> None:
  """A contender's process: the spec (JSON) on the first line of stdin, then "run START N"
  lines, each answered by "time SECONDS LOSS"; "ready {JSON}" once set up and warmed up (where
  it imported bottleneck from, its GLIBC_TUNABLES), or "failed REASON" (one line) if it
  cannot run. It ends at the end of its input, or quietly when its parent has gone (a closed
  pipe)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it kills us
  spec = json.loads(sys.stdin.readline())
  try:
    _contend(spec)
  except BrokenPipeError:
    os._exit(0)  # the parent stopped (Ctrl-C, SIGTERM): nobody reads what is left to say
  except Exception as e:
    # Bad input (any checkout's ConfigError), or an earlier checkout that this harness cannot
    # drive: one line, which the parent says. Our own checkout's other errors are bugs: shown.
    if type(e).__name__ != "ConfigError" and _same(spec["tree"], HERE):
      raise
    print("failed", _one_line(e), flush=True)
    sys.exit(2)


def _same(a: str, b: str) -> bool:
  return os.path.realpath(a) == os.path.realpath(b)


def _one_line(e: Exception) -> str:
  """An exception as one line: its message, and for other than ConfigError its type and where
  it was raised."""
  text = " ".join(str(e).split("\n--------------------\n")[0].split())
  if type(e).__name__ == "ConfigError":
    return text
  frame = traceback.extract_tb(e.__traceback__)[-1]
  return f"{type(e).__name__}: {text} (at {frame.filename}:{frame.lineno})"


def _isolate(tree: str) -> None:
  """Imports of `bottleneck`, `configs` and `experiments` from `tree` alone: an editable
  install's finder (setuptools' `__editable__` meta path finder) resolves the modules a tree
  lacks from the installed checkout, which would time a mix of two checkouts."""
  sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in _module_of(f)]
  sys.path.insert(0, tree)


def _module_of(finder) -> str:
  return getattr(finder, "__module__", None) or getattr(type(finder), "__module__", "") or ""


def _foreign_modules(tree: str) -> list[str]:
  """The checkout's modules this process imported from elsewhere than `tree`."""
  root = os.path.realpath(tree) + os.sep
  return sorted(name for name, module in list(sys.modules.items())
                if name.split(".")[0] in ("bottleneck", "configs",
                                          "experiments") and getattr(module, "__file__", None)
                and not os.path.realpath(module.__file__).startswith(root))


def _contend(spec: dict) -> None:
  _isolate(spec["tree"])
  import bottleneck  # the checkout's own, or a failure here, before JAX is imported
  where = os.path.dirname(os.path.dirname(os.path.abspath(bottleneck.__file__)))
  run = _torch_setup(spec) if spec["kind"] == "torch" else _jax_setup(spec)
  foreign = _foreign_modules(spec["tree"])
  if foreign:  # a mix of two checkouts: nothing of it is timed
    print("failed", f"it imported {', '.join(foreign[:3])} from outside {spec['tree']}", flush=True)
    sys.exit(2)
  run(0, WARMUP_STEPS)
  tunables = os.environ.get("GLIBC_TUNABLES", "")  # malloc's huge pages, or not
  print("ready", json.dumps({"tree": where, "glibc_tunables": tunables}), flush=True)
  for line in sys.stdin:
    words = line.split()
    if not words or words[0] != "run":
      break
    t = time.perf_counter()
    loss = run(int(words[1]), int(words[2]))
    print("time", time.perf_counter() - t, loss, flush=True)


# --- the parent: start the contenders, time them in rounds, tabulate -------------------------


def _error(message: str) -> Exception:
  """A ConfigError (one line from the commands): a contender that cannot run is bad input."""
  from bottleneck.util.errors import ConfigError
  return ConfigError(message)


class Contender:
  """One contender's process (see the module docstring)."""

  def __init__(self, name: str, spec: dict):
    self.name, self.spec, self.step, self.times, self.losses = name, spec, WARMUP_STEPS, [], []
    code = f"import runpy; runpy.run_path({os.path.abspath(__file__)!r}, run_name='__contender__')"
    # Run in the checkout: `python -c` also imports from the working directory.
    from bottleneck.util import hugepages
    environ = hugepages.without_tunable(os.environ) if spec.get("small_pages") else None
    self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1, cwd=spec["tree"],
                                 env=environ)
    self._say(json.dumps(spec))
    self.tree = self.glibc_tunables = None

  def _say(self, line: str) -> None:
    try:
      self.proc.stdin.write(line + "\n")
    except OSError:  # it has died: its (empty) answer says so
      pass

  def wait_ready(self) -> None:
    """Waits for the set-up and warm-up; checks where the contender imported its code from."""
    ready = json.loads(self._answer("ready"))
    self.tree, self.glibc_tunables = ready["tree"], ready["glibc_tunables"]
    if os.path.realpath(self.tree) != os.path.realpath(self.spec["tree"]):
      raise _error(f"throughput: contender {self.name!r} imported bottleneck from "
                   f"{self.tree}, not from the checkout {self.spec['tree']}")

  def _answer(self, word: str) -> str:
    """The rest of the contender's next line, which must start with `word`."""
    line = self.proc.stdout.readline()
    if not line.startswith(word + " "):
      self.proc.kill()
      where = f"throughput: contender {self.name!r} ({self.spec['tree']}) stopped"
      if line.startswith("failed "):
        raise _error(f"{where}: {line[len('failed '):].strip()}")
      raise _error(f"{where} before answering (its error is above); it said {line.strip()!r}")
    return line[len(word) + 1:].rstrip("\n")

  def time(self, steps: int) -> float:
    self._say(f"run {self.step} {steps}")
    seconds, loss = map(float, self._answer("time").split())
    self.step += steps
    self.times.append(seconds)
    self.losses.append(loss)
    return seconds

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.proc.stdin.close()
      except OSError:
        pass
      try:
        self.proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self.proc.kill()


def contender_specs(config, data_dir: str, num_classes: int, total_steps: int, *,
                    baseline: str | None, torch: bool,
                    workers: tuple[int, ...] = ()) -> list[tuple[str, dict]]:
  """(name, spec) of every contender of a training config (see the module docstring)."""
  from bottleneck.train import run_config
  from bottleneck.util import hugepages

  values = run_config.record(config)
  base = dict(kind="jax", tree=HERE, data=data_dir, num_classes=num_classes,
              total_steps=total_steps, config=values)
  specs = [("this checkout", base)]
  for w in workers:  # the batches made by data workers ahead of the steps
    made_ahead = json.loads(json.dumps(values))
    made_ahead["data"]["workers"] = w
    specs.append((f"this checkout, data.workers={w}", {**base, "config": made_ahead}))
  if values.get("data", {}).get("in_memory_mb"):
    from_disk = json.loads(json.dumps(values))
    from_disk["data"]["in_memory_mb"] = 0
    specs.append(("this checkout, batches read from disk", {**base, "config": from_disk}))
  # Huge pages are this process's (the entry point's) doing: without them, nothing to compare.
  huge = hugepages.tunable_value(os.environ) == "1"
  if huge:
    specs.append(("this checkout, 4 KB pages", {**base, "small_pages": True}))
  if baseline:
    name = os.path.basename(os.path.abspath(baseline)) + ("; 4 KB pages" if huge else "")
    specs.append((f"earlier checkout ({name})",
                  {**base, "tree": os.path.abspath(baseline), "small_pages": huge}))
  if torch:
    specs.append(("PyTorch eager", {**base, "kind": "torch"}))
  return specs


def measure(specs: list[tuple[str, dict]], *, rounds: int, steps: int, batch_size: int,
            say=print) -> list[dict]:
  """Times every contender `rounds` times `steps` steps, in turn; one row per contender with
  its median examples/s, its median per-round ratio of time per step to the first's, and the
  loss of its last step in each round (every contender trains the same steps)."""
  contenders = []
  try:
    say("setting up " + ", ".join(name for name, _ in specs) + " ...")
    for name, spec in specs:  # set up together (not timed), then timed one at a time
      contenders.append(Contender(name, spec))
    for c in contenders:
      c.wait_ready()
    for r in range(rounds):
      order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
      for c in order:
        c.time(steps)
      say(f"round {r + 1}/{rounds}: "
          + ", ".join(f"{c.name} {1e3 * c.times[-1] / steps:.0f} ms/step" for c in contenders))
  except BaseException:  # a contender failed, or Ctrl-C: stop the others now
    for c in contenders:
      c.proc.kill()
    raise
  finally:
    for c in contenders:
      c.close()
  first = contenders[0].times
  return [{
      "contender": c.name, "tree": c.tree, "glibc_tunables": c.glibc_tunables, "rounds": rounds,
      "steps": steps, "ms_per_step": 1e3 * statistics.median(c.times) / steps,
      "examples_per_s": statistics.median(steps * batch_size / t for t in c.times),
      "time_vs_first": statistics.median(t / f for t, f in zip(c.times, first)),
      "round_ms_per_step": [1e3 * t / steps for t in c.times], "losses": c.losses
  } for c in contenders]


def place_on_roofline(config, num_classes: int, rows: list[dict]) -> dict:
  """Each row's achieved GFLOP/s, with the roofline of this device measured now: FLOPs per step
  by the convention (3 x a forward's 2 x MACs, every contender the same network), the
  attainable GFLOP/s at the forward's intensity with each conv a kernel of its own
  (`roofline.intensities`: a backward pass reads and writes about twice what the forward does,
  so the step's intensity is about the forward's), against the matmul peak and the STREAM
  triad bandwidth. Adds `gflops` and `of_attainable` to the rows; returns the roofline."""
  from bottleneck.measure import benchmark, roofline
  from bottleneck.train import builders
  from bottleneck.util import env

  model = builders.build_model(config, num_classes, initialise=False)  # its shapes alone
  shape = (config.batch_size, config.image_size, config.image_size, model.in_channels)
  dtype = env.DTYPES[config.dtype]
  i = roofline.intensities(model, shape, dtype)
  peak, bw = benchmark.matmul_peak(dtype), roofline.bandwidth(config.dtype)["triad_gb_per_s"]
  roof = {
      "step_gflop": 6 * i["macs"] / 1e9, "intensity": i["conv_intensity"], "peak_gflops": peak,
      "triad_gb_per_s": bw, "attainable_gflops": roofline.attainable(i["conv_intensity"], peak, bw),
      "bound": roofline.bound(i["conv_intensity"], peak, bw)
  }
  for row in rows:
    row["gflops"] = roof["step_gflop"] / (row["ms_per_step"] / 1e3)
    row["of_attainable"] = row["gflops"] / roof["attainable_gflops"]
  return roof


if __name__ == "__contender__":
  contender_main()
