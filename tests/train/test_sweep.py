"""Sweeps: expansion and naming, resume, a failing point, the print and Ray launchers."""

import dataclasses
import glob
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from bottleneck.analysis import results
from bottleneck.train import checkpoints, sweep
from bottleneck.util import config_files, workdir as wd
from bottleneck.util.errors import ConfigError
from tests import ROOT, commands, interruptible, sigterm_when, tiny_sweep_config


def points(tmp_path, sweep_list=None):
  config = tiny_sweep_config.get_config()

  class Module:
    get_sweep = staticmethod(lambda arg="": sweep_list
                             if sweep_list is not None else tiny_sweep_config.get_sweep())

  return sweep.expand(Module, config, str(tmp_path))


def test_expansion_and_names(tmp_path, digits_dir):
  pts = points(tmp_path, [{"reduce": True, "seed": 0}, {"optimizer.learning_rate": 0.1},
                          {"model_kwargs.width": 0.5, "data.flip": True}])
  assert [p.name for p in pts] == [
      "reduce=True,seed=0", "optimizer.learning_rate=0.1", "model_kwargs.width=0.5,data.flip=True"
  ]
  assert pts[1].config.optimizer.learning_rate == 0.1 and pts[1].config.reduce is True
  assert pts[2].config.model_kwargs.width == 0.5 and pts[2].config.data.flip is True
  assert pts[0].workdir == os.path.join(str(tmp_path), "reduce=True,seed=0")
  assert sweep.point_name({"dataset": "imagenette/160px"}) == "dataset=imagenette_160px"
  assert sweep.point_name({}) == "default"


def test_get_sweep_takes_the_config_argument(tmp_path):

  class Old:
    get_sweep = staticmethod(lambda: [{}])

  with pytest.raises(ConfigError, match=r"get_sweep takes the config's argument"):
    sweep.expand(Old, tiny_sweep_config.get_config(), str(tmp_path))
  seen = []

  class New:
    get_sweep = staticmethod(lambda arg="": seen.append(arg) or [{}])

  sweep.expand(New, tiny_sweep_config.get_config(), str(tmp_path))
  sweep.expand(New, tiny_sweep_config.get_config(), str(tmp_path), "quick")
  assert seen == ["", "quick"]


def test_bad_sweeps_are_clear_errors(tmp_path, digits_dir):
  with pytest.raises(ConfigError, match=r"no field 'learning_rat'; it has .*learning_rate"):
    points(tmp_path, [{"optimizer.learning_rat": 0.1}])
  with pytest.raises(ConfigError, match=r"sweep override batch_size='64': "):
    points(tmp_path, [{"batch_size": "64"}])  # a wrong type: one line, not a traceback
  with pytest.raises(ConfigError, match=r"the point 'seed=1' twice"):
    points(tmp_path, [{"seed": 1}, {"seed": 1}])


def test_config_file_sweep_loads():
  module, config = config_files.load_config_file(
      os.path.join(ROOT, "configs", "digits_inception.py:naive"))
  assert config.reduce is False
  assert len(sweep.expand(module, config, "/tmp/x")) == 9  # 2 x 3 seeds, 3 more reduced (A/A)


def test_outcomes_are_a_kind_with_a_reason_that_read_as_the_summary_says():
  outcomes = [
      sweep.Outcome.of({"result": 1}),
      sweep.Outcome("skipped"),
      sweep.Outcome.of({"error": "ValueError: x", "traceback": "..."}),
      sweep.Outcome.of({"busy": "held by pid 7"}),
      sweep.Outcome.of({"interrupted": "^C"})
  ]
  assert outcomes == [
      "done", "skipped (done)", "failed: ValueError: x", "busy: held by pid 7", "interrupted: ^C"
  ]
  assert [o.kind for o in outcomes] == ["done", "skipped", "failed", "busy", "interrupted"]
  assert [o.finished for o in outcomes] == [True, True, False, False, False]
  assert outcomes[2].detail == "ValueError: x"
  with pytest.raises(ValueError, match="unknown outcome 'ok'"):
    sweep.Outcome("ok")
  summary = dict(zip("abcde", outcomes))
  assert sweep.format_summary(summary, "w").splitlines()[0] == "sweep in w: 2/5 points finished"


def test_a_signal_as_a_point_ends_stops_the_sweep(tmp_path, digits_dir, monkeypatch):
  """SIGTERM as the first point saves its last checkpoint: that point finishes, the sweep
  stops with Interrupted instead of training the next one."""
  pts = points(tmp_path)
  with sigterm_when(monkeypatch, checkpoints, "save", lambda m, step, *_: step == 8) as sent, \
      pytest.raises(KeyboardInterrupt) as stopped:
    sweep.run(pts)
  assert sent
  assert isinstance(stopped.value, sweep.signals.Interrupted), stopped.value
  assert os.path.exists(os.path.join(pts[0].workdir, wd.RESULT))
  assert not os.path.exists(pts[1].workdir) or not wd.has_checkpoints(pts[1].workdir)


def test_resume_skips_finished_points_and_a_bad_point_fails_alone(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": 0}, {"image_size": 3}])
  summary = sweep.run(pts)
  assert summary["seed=0"] == "done"
  assert summary["image_size=3"].startswith("failed: ConfigError")
  assert "image_size=3 is too small; the minimum is 6" in summary["image_size=3"]
  error = wd.read_json(os.path.join(pts[1].workdir, sweep.ERROR))
  assert "Traceback" in error["traceback"]
  metrics = os.path.join(pts[0].workdir, wd.METRICS)
  before = os.path.getmtime(metrics)
  again = sweep.run(pts)
  assert again["seed=0"] == "skipped (done)" and again["image_size=3"].startswith("failed")
  assert os.path.getmtime(metrics) == before
  text = sweep.format_summary(again, str(tmp_path))
  assert "1/2 points finished" in text


def test_seeds_of_one_config_are_one_unit(tmp_path, digits_dir):
  pts = points(tmp_path, [{"reduce": r, "seed": s} for r in (True, False) for s in (0, 1, 2)]
               + [{"reduce": True, "seed": 3, "optimizer.learning_rate": 0.1}])
  grouped = sweep.units(pts, seeds_together=True)
  assert [[p.name for p in u] for u in grouped
         ] == [["reduce=True,seed=0", "reduce=True,seed=1", "reduce=True,seed=2"],
               ["reduce=False,seed=0", "reduce=False,seed=1", "reduce=False,seed=2"],
               ["reduce=True,seed=3,optimizer.learning_rate=0.1"]]
  assert sweep.unit_label(grouped[0]) == "reduce=True seeds=0,1,2"
  assert [len(u) for u in sweep.units(pts, False)] == [1] * 7


def test_a_config_declares_whether_its_seeds_train_together():
  """The study configs train each seed alone on Fashion-MNIST (a sweep's default there, unless
  --seeds_together says otherwise); a config that declares nothing trains them together."""
  import types

  from configs import ablation_families, iso_macs
  for module in (ablation_families, iso_macs):
    assert sweep.seeds_together(module, "") and sweep.seeds_together(module, "quick")
    assert not sweep.seeds_together(module, "fashion")
    assert not sweep.seeds_together(module, "fashion,quick")
  assert sweep.seeds_together(types.SimpleNamespace(), "fashion")


def test_a_sweep_trains_the_seeds_together(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": s} for s in (0, 1)] + [{"seed": 2, "image_size": 3}])
  summary = sweep.run(pts)
  assert summary["seed=0"] == summary["seed=1"] == "done"
  assert summary["seed=2,image_size=3"].startswith("failed: ConfigError")
  for p in pts[:2]:
    assert wd.read_json(os.path.join(p.workdir, wd.RESULT))["seeds_together"] == [0, 1]
  # Without seeds_together, a point alone: the same config, so the finished runs stand.
  assert sweep.run(pts, seeds_together=False)["seed=0"] == "skipped (done)"
  # Changed and rerun on request: together again, each old run set aside in its own point.
  longer = points(tmp_path, [{"seed": s, "num_train_steps": 12} for s in (0, 1)])
  longer = [sweep.Point(p.name, {}, q.config, p.workdir) for p, q in zip(pts, longer)]
  assert sweep.run(longer, rerun_changed=True) == {"seed=0": "done", "seed=1": "done"}
  for p in longer:
    result = wd.read_json(os.path.join(p.workdir, wd.RESULT))
    assert result["train_steps"] == 12 and result["seeds_together"] == [0, 1]
    assert len(os.listdir(os.path.join(p.workdir, wd.SET_ASIDE))) == 1


def test_interrupted_point_resumes(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": 0}])
  sweep.run_point(pts[0].config.to_dict(), pts[0].workdir)
  os.remove(os.path.join(pts[0].workdir, wd.RESULT))  # as if killed after the last checkpoint
  assert sweep.status(pts[0]) == "started"
  assert sweep.run(pts) == {"seed=0": "done"}


def test_print_launcher_cli():
  proc = commands.run("experiments.sweep", f"--config={ROOT}/configs/digits_inception.py",
                      "--workdir=/tmp/unused_sweep", "--launcher=print")
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 9  # both variants x 3 seeds, and 3 more reduced ones (the A/A check)
  assert "-m experiments.train" in lines[0] and "--config.reduce=True" in lines[0]
  assert "--config.seed=2" in lines[5] and "reduce=False,seed=2" in lines[5]
  assert "--config.seed=5" in lines[-1] and "reduce=True,seed=5" in lines[-1]


# Two units: a point alone, and two seeds trained as one program.
TWO_UNITS = [{"reduce": r, "seed": s} for r, s in ((True, 0), (False, 0), (False, 1))]


class FakeRay:
  """Ray's API as the launcher uses it, run in this process; each task's arguments go through
  pickle, as Ray sends them."""

  def __init__(self, initialized=False, node_dies=()):
    self.initialized, self.calls, self.node_dies = initialized, [], node_dies

  def is_initialized(self):
    return self.initialized

  def init(self, **kwargs):
    self.calls.append(("init", kwargs))
    self.initialized = True

  def shutdown(self):
    self.calls.append(("shutdown",))
    self.initialized = False

  def remote(self, num_cpus, max_retries):

    def wrap(fn):

      class Task:

        @staticmethod
        def remote(*args):
          self.calls.append(("task", num_cpus, max_retries))
          return Ref(fn, pickle.loads(pickle.dumps(args)))

      return Task

    return wrap

  def wait(self, refs, num_returns):
    return refs[:num_returns], refs[num_returns:]

  def get(self, ref):
    if ref.args[1] in self.node_dies:  # the unit's label
      raise RuntimeError("NodeDiedError: the node running this task died\nmore")
    return ref.fn(*ref.args)

  @staticmethod
  def get_runtime_context():
    return types.SimpleNamespace(get_node_id=lambda: "node-1")


@dataclasses.dataclass(frozen=True, eq=False)
class Ref:
  fn: object
  args: tuple


def test_ray_launcher_sends_each_unit_as_one_task(tmp_path, monkeypatch):
  """The launcher's own code, Ray faked (the real one: the slow test below): one task per unit,
  its arguments picklable and its directories absolute (Ray's workers start elsewhere); a
  local Ray started and shut down around the tasks, an address joined, a running Ray used
  and left running."""
  units = []

  def unit(configs, workdirs, restarts, label=None):
    units.append((len(configs), workdirs, restarts, label))
    return [{"result": {}} for _ in configs]

  monkeypatch.setattr(sweep, "run_unit", unit)
  # Nothing to connect to at 10.0.0.7 (the test of no cluster there: below).
  monkeypatch.setattr(sweep.socket, "create_connection", lambda *a, **k: socket.socket())
  monkeypatch.chdir(tmp_path)
  monkeypatch.delenv("RAY_ADDRESS", raising=False)
  for address, running in ((None, False), ("10.0.0.7:6379", False), ("auto", True)):
    ray = FakeRay(initialized=running)
    monkeypatch.setitem(sys.modules, "ray", ray)
    units.clear()
    pts = points(f"sweep_{running}_{address}", TWO_UNITS)  # relative
    assert sweep.run(pts, launcher="ray", ray_address=address) == {p.name: "done" for p in pts}
    assert [(n, restarts, label) for n, _, restarts, label in units
           ] == [(1, [False], "reduce=True,seed=0"), (2, [False, False], "reduce=False seeds=0,1")]
    assert [w for u in units for w in u[1]] == [os.path.abspath(p.workdir) for p in pts]
    tasks = [("task", 1, sweep.RAY_RETRIES)] * 2
    if running:
      assert ray.calls == tasks and ray.initialized
    else:
      (_, init), *rest = ray.calls
      assert rest == tasks + [("shutdown",)]
      # Without an address a Ray of its own ("local"), not a cluster already running here.
      assert init.pop("address") == (address or "local")
      assert init.pop("include_dashboard") is False and init.pop("log_to_driver") is True
      if address is None:  # a local Ray, sized small, that finds this package
        assert init.pop("object_store_memory") == 256 * 1024**2
        assert init.pop("runtime_env")["env_vars"]["PYTHONPATH"].split(os.pathsep) == sys.path
      assert init == {}
  # Ray's own variable names a cluster as the flag does.
  monkeypatch.setenv("RAY_ADDRESS", "10.0.0.8:6379")
  ray = FakeRay(initialized=False)
  monkeypatch.setitem(sys.modules, "ray", ray)
  sweep.run(points("sweep_env", TWO_UNITS), launcher="ray")
  assert ray.calls[0][1]["address"] == "10.0.0.8:6379"
  assert "object_store_memory" not in ray.calls[0][1]


def test_a_ray_unit_that_fails_is_a_failed_point_and_the_others_are_kept(tmp_path, monkeypatch):
  """A unit whose task Ray gives up on (its node died, and its retries too) fails alone: the
  sweep goes on, says why, and a rerun runs only that unit."""
  ran = []

  def unit(configs, workdirs, restarts, label=None):
    ran.append(label)
    for w in workdirs:
      wd.write_json(os.path.join(w, wd.RESULT), {"train_steps": 8})
    return [{"result": {}} for _ in configs]

  monkeypatch.setattr(sweep, "run_unit", unit)
  monkeypatch.setattr(
      sweep, "status", lambda p: "done"
      if os.path.exists(os.path.join(p.workdir, wd.RESULT)) else "new")
  pts = points(tmp_path, TWO_UNITS)
  for p in pts:
    os.makedirs(p.workdir)
  monkeypatch.setitem(sys.modules, "ray", FakeRay(node_dies=("reduce=True,seed=0",)))
  summary = sweep.run(pts, launcher="ray")
  assert summary[pts[0].name].kind == "failed"
  assert "its Ray task failed (RuntimeError: NodeDiedError: the node" in summary[pts[0].name]
  assert [summary[p.name] for p in pts[1:]] == ["done", "done"]
  ran.clear()
  monkeypatch.setitem(sys.modules, "ray", FakeRay())
  assert sweep.run(pts, launcher="ray") == {
      pts[0].name: "done", pts[1].name: "skipped (done)", pts[2].name: "skipped (done)"
  }
  assert ran == ["reduce=True,seed=0"]


def test_an_address_where_no_ray_answers_is_one_error_at_once(tmp_path, monkeypatch):
  """ray.init retried for ever (seen over 6 minutes) where nothing listened, and raised
  RuntimeError's traceback where something else answered; nothing is run."""
  with socket.socket() as s:  # a port nothing listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  monkeypatch.setitem(sys.modules, "ray", FakeRay(initialized=False))
  monkeypatch.setattr(sweep, "run_unit", lambda *a, **k: pytest.fail("a unit ran"))
  with pytest.raises(
      ConfigError, match=rf"--ray_address=127.0.0.1:{port}: could not join a Ray "
      r"cluster there \(Connection refused\)"):
    sweep.run(points(tmp_path, TWO_UNITS), launcher="ray", ray_address=f"127.0.0.1:{port}")
  assert sys.modules["ray"].calls == []

  def refused(**kwargs):
    raise RuntimeError("Failed to connect to GCS. Last connection error: ...\n(more)")

  ray = FakeRay(initialized=False)
  ray.init = refused
  monkeypatch.setitem(sys.modules, "ray", ray)
  monkeypatch.setattr(sweep.socket, "create_connection", lambda *a, **k: socket.socket())
  with pytest.raises(
      ConfigError, match=r"--ray_address=10.0.0.9:6379: could not join a Ray cluster "
      r"there \(Failed to connect to GCS. Last connection error: ...\);"):
    sweep.run(points(tmp_path, TWO_UNITS), launcher="ray", ray_address="10.0.0.9:6379")


# Ray's own start-up is most of its 25 s; the test above covers the launcher's code.
@pytest.mark.slow
def test_ray_launcher_end_to_end(tmp_path, digits_dir):
  pytest.importorskip("ray")
  pts = points(tmp_path, TWO_UNITS)
  summary = sweep.run(pts, launcher="ray")
  assert summary == {p.name: "done" for p in pts}
  together = []
  for p in pts:
    result = wd.read_json(os.path.join(p.workdir, wd.RESULT))
    assert result["train_steps"] == 8
    together.append(result["seeds_together"])
  assert together == [None, [0, 1], [0, 1]]


# Two Ray nodes take about 40 s to start; the faked Ray above covers the launcher's code.
@pytest.mark.slow
def test_a_sweep_on_a_two_node_ray_cluster_loses_nothing_when_a_node_is_killed(
    tmp_path, digits_dir):
  """`experiments.sweep --launcher=ray --ray_address=...` on a cluster of two nodes (Ray's own
  `Cluster`, one CPU each, on this machine): the runs land on both nodes and write to one
  workdir; the worker node killed (no warning) while it trains loses no finished run, and the
  sweep, or its rerun, finishes the rest."""
  pytest.importorskip("ray")
  from ray.cluster_utils import Cluster
  cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
  try:
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    workdir, log = str(tmp_path / "sweep"), str(tmp_path / "log")
    env = {
        **os.environ, "JAX_PLATFORMS": "cpu", "BOTTLENECK_TEST_TFDS_DIR": digits_dir,
        "BOTTLENECK_TEST_SWEEP_POINTS": "6", "BOTTLENECK_TEST_SWEEP_STEPS": "300"
    }
    command = [
        sys.executable, "-m", "experiments.sweep", f"--config={ROOT}/tests/tiny_sweep_config.py",
        f"--workdir={workdir}", "--launcher=ray", f"--ray_address={cluster.address}"
    ]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), text=True)
    nodes = lambda: set(re.findall(r"ran on Ray node (\w+)", open(log).read()))
    results = lambda: glob.glob(os.path.join(workdir, "*", wd.RESULT))
    # In flight: a config written, no result yet; one on each node (a CPU each).
    in_flight = lambda: {
        os.path.dirname(p) for p in glob.glob(os.path.join(workdir, "*", wd.CONFIG))
    } - {os.path.dirname(p) for p in results()}
    deadline = time.time() + 300
    while len(nodes()) < 2 or len(in_flight()) < 2:  # a unit finished on each, two running
      assert proc.poll() is None and time.time() < deadline, open(log).read()[-3000:]
      time.sleep(0.05)
    finished = {p: open(p, "rb").read() for p in results()}
    started = in_flight() - {os.path.dirname(p) for p in finished}
    cluster.remove_node(worker, allow_graceful=False)
    assert proc.wait(timeout=300) in (0, 1), open(log).read()[-3000:]
    for path, content in finished.items():  # not retrained, not rewritten
      assert open(path, "rb").read() == content
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(results()) == 6
    assert all(wd.read_json(p)["train_steps"] == 300 for p in results())
    assert started and all(os.path.exists(os.path.join(w, wd.RESULT)) for w in started)
  finally:
    cluster.shutdown()


def test_parallel_workers_on_a_fresh_data_dir_show_their_progress(tmp_path, capfd):
  # Two workers: one point alone, and two seeds as one program.
  pts = points(tmp_path / "sweep", TWO_UNITS)
  for p in pts:  # first use: both workers prepare the dataset at once
    p.config.data_dir = str(tmp_path / "fresh_tfds")
  assert set(sweep.run(pts, parallel=2).values()) == {"done"}
  err = capfd.readouterr().err
  # progress from inside the workers, labelled
  for label in ("reduce=True,seed=0", "reduce=False seeds=0,1"):
    assert f"[{label}] step 8/8" in err
  assert wd.read_json(os.path.join(pts[2].workdir, wd.RESULT))["seeds_together"] == [0, 1]
  with pytest.raises(ConfigError, match=r"--parallel=0 is invalid"):
    sweep.run(pts, parallel=0)
  with pytest.raises(ConfigError, match=r"--ray_address=auto is for --launcher=ray"):
    sweep.run(pts, ray_address="auto")  # it was ignored


def _sweep_cli(workdir, digits_dir, steps, log):
  """`experiments.sweep --parallel=2` in the background, its output to the file `log` (a pipe
  nobody reads would fill up and block the workers' progress lines)."""
  env = {
      **os.environ, "JAX_PLATFORMS": "cpu", "BOTTLENECK_TEST_TFDS_DIR": digits_dir,
      "BOTTLENECK_TEST_SWEEP_STEPS": str(steps)
  }
  interruptible()
  return subprocess.Popen([
      sys.executable, "-m", "experiments.sweep", f"--config={ROOT}/tests/tiny_sweep_config.py",
      f"--workdir={workdir}", "--parallel=2"
  ], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"), text=True)


def _wait_for(paths, proc, log, timeout=240):
  deadline = time.time() + timeout
  while not all(os.path.exists(p) for p in paths):
    assert proc.poll() is None and time.time() < deadline, open(log).read()[-3000:]
    time.sleep(0.1)


def _free(workdir) -> bool:
  try:
    with wd.lock(workdir):
      return True
  except wd.WorkdirBusy:
    return False


def _holder(workdir):
  """The PID recorded in a point's lock file (the last process that took it)."""
  try:
    text = open(os.path.join(workdir, wd.LOCK)).read()
  except FileNotFoundError:
    return None
  m = re.search(r"PID (\d+)", text)
  return int(m.group(1)) if m else None


def _alive(pid) -> bool:
  """Running (a zombie left to an init that does not reap counts as dead)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False
  except OSError:  # no /proc: ask the kernel
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    return True


def test_parallel_sweep_ctrl_c_and_a_killed_parent(tmp_path, digits_dir):
  work = tmp_path / "sweep"
  names = [sweep.point_name(o) for o in tiny_sweep_config.get_sweep()]
  # Ctrl-C: the workers finish their checkpoint and stop; one line, exit status 130.
  log = tmp_path / "sweep.log"
  proc = _sweep_cli(work, digits_dir, 4000, log)
  _wait_for([work / n / wd.METRICS for n in names], proc, log)
  while not all(wd.has_checkpoints(str(work / n)) for n in names):
    assert proc.poll() is None, log.read_text()[-3000:]
    time.sleep(0.1)
  proc.send_signal(signal.SIGINT)
  proc.wait(timeout=180)
  err = log.read_text()
  assert proc.returncode == 130, err[-3000:]
  assert "sweep interrupted" in err and "Traceback" not in err
  assert all(_free(str(work / n)) for n in names)
  # SIGKILL of the sweep: its workers notice and stop within about a second.
  before = {n: _holder(work / n) for n in names}
  proc = _sweep_cli(work, digits_dir, 4000, log)
  deadline = time.time() + 240
  while any(_holder(work / n) in (before[n], None) for n in names):  # workers hold the points
    assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
    time.sleep(0.1)
  workers = [_holder(work / n) for n in names]
  proc.kill()
  proc.wait()
  deadline = time.time() + 30
  while any(_alive(pid) for pid in workers):
    assert time.time() < deadline, "orphaned workers still run"
    time.sleep(0.2)
  # A process shows as a zombie as soon as its main thread ends; the kernel drops its lock when
  # the last of its (many, XLA's) threads has gone, a moment later.
  while not all(_free(str(work / n)) for n in names):
    assert time.time() < deadline, [_holder(work / n) for n in names]
    time.sleep(0.2)


def test_changed_config_is_refused_naming_the_point_then_rerun_on_request(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": 0}])
  assert sweep.run(pts) == {"seed=0": "done"}
  longer = points(tmp_path, [{"seed": 0, "num_train_steps": 12}])
  longer = [sweep.Point("seed=0", {}, longer[0].config, pts[0].workdir)]  # same directory
  assert sweep.status(longer[0]) == "changed"
  with pytest.raises(
      ConfigError, match=r"1 sweep point\(s\) ran under another config than the "
      r"sweep's now: seed=0 \(num_train_steps: 8 there, 12 "
      r"now\)\. Rerun with --rerun_changed"):
    sweep.run(longer)
  assert wd.read_json(os.path.join(pts[0].workdir, wd.RESULT))["train_steps"] == 8  # untouched
  assert sweep.run(longer, rerun_changed=True) == {"seed=0": "done"}
  assert wd.read_json(os.path.join(pts[0].workdir, wd.RESULT))["train_steps"] == 12
  aside = os.path.join(pts[0].workdir, wd.SET_ASIDE)
  (old,) = os.listdir(aside)
  assert wd.read_json(os.path.join(aside, old, wd.RESULT))["train_steps"] == 8  # kept
  assert len(results.collect(str(tmp_path))) == 1  # set-aside runs are not in the tables
  # A cut-short result is named and recomputed from the final checkpoint, not counted done.
  result_path = os.path.join(pts[0].workdir, wd.RESULT)
  before = wd.read_json(result_path)
  with open(result_path, "r+") as f:
    f.truncate(40)
  assert sweep.status(longer[0]) == "unreadable"
  assert sweep.run(longer) == {"seed=0": "done"}
  after = wd.read_json(result_path)
  assert after["eval_loss"] == pytest.approx(before["eval_loss"], abs=1e-6)
  # resumed at its last step: the training time is the run's, never 0
  assert after["train_time_s"] == pytest.approx(before["train_time_s"])
  assert after["examples_per_s"] == pytest.approx(before["examples_per_s"])


def test_a_locked_sweep_or_point_is_not_run_twice(tmp_path, digits_dir):
  pts = points(tmp_path, [{"seed": 0}, {"seed": 1}])
  with wd.lock(str(tmp_path)):  # another sweep holds the directory (flock: per open file)
    with pytest.raises(wd.WorkdirBusy, match=r"is in use by PID \d+ on host"):
      sweep.run(pts)
  with wd.lock(pts[1].workdir):  # someone trains this point by hand
    summary = sweep.run(pts[1:])
  assert summary["seed=1"].startswith("busy: ") and "in use by PID" in summary["seed=1"]
  assert not os.path.exists(os.path.join(pts[1].workdir, sweep.ERROR))  # not "failed"


def test_a_worker_of_a_sweep_started_with_sigint_ignored_hears_the_sweeps_sigint():
  # A sweep started as a background job ignores SIGINT, and its spawned workers inherit that;
  # the sweep passes a stop on to them as SIGINT, which they must hear (then checkpoint).
  code = ("import os, signal, time\n"
          "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
          "from bottleneck.train import sweep\n"
          "sweep._own_process_group()\n"
          "try:\n"
          "  os.kill(os.getpid(), signal.SIGINT)\n"
          "  time.sleep(0.5)  # a signal heard interrupts the sleep\n"
          "  print('ignored', os.getpgrp() == os.getpid())\n"
          "except KeyboardInterrupt:\n"
          "  print('heard', os.getpgrp() == os.getpid())\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.stdout.split() == ["heard", "True"], out.stderr[-2000:]
