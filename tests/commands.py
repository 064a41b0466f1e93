"""Entry points run as `python -m <module> <args>` runs them, for a fraction of the start-up.

Most of a command's start is importing JAX, Flax, TFDS, pandas and the library. Here one
process per test worker imports them once (`python -m tests.commands`, started at the first
command and kept), then forks a child per command, which runs the module as `__main__`
(`runpy`) with its arguments, in its directory and environment, with stdin, stdout and stderr
of its own. The experiments themselves are not imported ahead (their absl flags are defined as
`__main__` runs them), and no JAX backend is started before a fork, so each child starts its
own with its own XLA_FLAGS. A command whose environment changes a `JAX_` variable (read when
JAX is imported) is exec'd as a fresh `python -m` instead.

Tests that signal a command while it runs keep `subprocess.Popen`: they need the process.
"""

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = ("jax", "flax.nnx", "optax", "orbax.checkpoint", "tensorflow_datasets", "grain", "pandas",
           "matplotlib", "ml_collections", "absl.app", "bottleneck.train.loop",
           "bottleneck.train.sweep", "bottleneck.studies.report")
_server = []  # this test process's forking process, started at its first command


def run_all(commands: dict[str, list[str]], parallel: int = 2, envs=None, cwd: str = ROOT,
            timeout: float = 300) -> dict:
  """{name: (returncode, stdout, stderr)} of the commands, each `[module, *args]`, `parallel`
  at a time in `cwd`; `envs` adds variables to the environment of the commands it names."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  request = {
      "commands": commands, "parallel": parallel, "timeout": timeout, "cwd": cwd,
      "envs": {name: {**env, **(envs or {}).get(name, {})} for name in commands}
  }
  if not _server or _server[0].poll() is not None:
    _server[:] = [
        subprocess.Popen([sys.executable, "-m", "tests.commands"], cwd=ROOT, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ]
    atexit.register(_server[0].kill)
  server = _server[0]
  server.stdin.write(json.dumps(request) + "\n")
  server.stdin.flush()
  reply = server.stdout.readline()
  assert reply, f"the forking process ended (status {server.wait()})"
  return {name: tuple(v) for name, v in json.loads(reply).items()}


def run(module: str, *args: str, env=None, cwd: str = ROOT,
        timeout: float = 300) -> subprocess.CompletedProcess:
  """One command, as `subprocess.run(..., capture_output=True, text=True)` would return it."""
  code, out, err = run_all({"c": [module, *args]}, 1, {"c": env or {}}, cwd, timeout)["c"]
  return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code, out, err)


def _child(args: list[str], env: dict, cwd: str, out: str, err: str) -> None:
  """In the forked child: run `args[0]` as `python -m` would, then exit with its status."""
  import runpy
  import traceback
  code = 1
  try:
    for fd, path in ((0, os.devnull), (1, out), (2, err)):
      os.dup2(os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC if fd else os.O_RDONLY), fd)
    os.chdir(cwd)
    if any(env.get(k) != os.environ.get(k) for k in {*env, *os.environ} if k.startswith("JAX_")):
      os.execve(sys.executable, [sys.executable, "-m", *args], env)
    os.environ.clear()
    os.environ.update(env)
    atexit._clear()  # the forking process's (its temporary folder's removal among them)
    sys.argv = list(args)
    try:
      runpy.run_module(args[0], run_name="__main__", alter_sys=True)
      code = 0
    except SystemExit as e:
      if e.code is None or isinstance(e.code, int):
        code = e.code or 0
      else:  # sys.exit("message"): the message on stderr, status 1
        print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 (as the interpreter does: the traceback, status 1)
      traceback.print_exc()
    atexit._run_exitfuncs()
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _serve(request: dict, folder: str) -> dict:
  """Runs one request's commands, `parallel` at a time; kills one that outlives `timeout`."""
  queue, running, results = list(request["commands"].items()), {}, {}
  while queue or running:
    while queue and len(running) < request["parallel"]:
      name, args = queue.pop(0)
      out, err = (os.path.join(folder, f"{len(results) + len(running)}.{s}") for s in "oe")
      sys.stdout.flush()
      pid = os.fork()
      if pid == 0:
        _child(args, request["envs"][name], request["cwd"], out, err)
      running[pid] = (name, out, err, time.monotonic())
    pid, status = os.waitpid(-1, os.WNOHANG)
    if pid == 0:
      for p, (*_, started) in running.items():
        if time.monotonic() - started > request["timeout"]:
          os.kill(p, 9)
      time.sleep(0.01)
      continue
    name, out, err, _ = running.pop(pid)
    with open(out, errors="replace") as o, open(err, errors="replace") as e:
      results[name] = (os.waitstatus_to_exitcode(status), o.read(), e.read())
  return results


def main() -> None:
  import importlib
  for module in PRELOAD:
    importlib.import_module(module)
  with tempfile.TemporaryDirectory() as folder:
    for line in sys.stdin:
      sys.stdout.write(json.dumps(_serve(json.loads(line), folder)) + "\n")
      sys.stdout.flush()


if __name__ == "__main__":
  main()
