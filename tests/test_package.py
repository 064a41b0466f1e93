"""The package as a whole: loading a saved model imports no training loop, and the GPU scripts
of .ci/ refuse bad input. Its shape (folders, imports, function sizes): test_layout.py."""

import os
import signal
import subprocess
import sys
import time

from tests import ROOT


def test_loading_and_evaluating_a_model_imports_no_training_loop():
  code = ("import sys, bottleneck.train.saved_models, bottleneck.train.evaluation, "
          "bottleneck.studies.fully_conv; "
          "print(' '.join(m for m in sys.modules if m.startswith('bottleneck')))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout.split()
  assert "bottleneck.train.saved_models" in out and "bottleneck.train.loop" not in out
  assert "bottleneck.train.sweep" not in out


def test_the_gpu_scripts_refuse_bad_input_in_one_line(tmp_path):
  """.ci/gpu_check and .ci/gpu_inputs, run where a GPU session would run them: an unknown
  stage or a missing dataset directory is one `error:` line, exit status 2, nothing written."""
  out = tmp_path / "out"
  check = subprocess.run(
      ["bash", ".ci/gpu_check", str(out), "env", "throughput", "tset"], cwd=ROOT,
      capture_output=True, text=True, timeout=60)
  assert check.returncode == 2
  assert check.stderr.splitlines() == [
      "error: unknown stage 'tset'; valid: env, paths, gpu, precision, tests, throughput, "
      "scale."
  ]
  assert not out.exists()
  inputs = subprocess.run(
      ["bash", ".ci/gpu_inputs", str(tmp_path / "no such dir")], cwd=ROOT, capture_output=True,
      text=True, timeout=60)
  assert inputs.returncode == 2
  [line] = inputs.stderr.splitlines()
  assert line.startswith("error: no train-images-idx3-ubyte.gz in ") and "no such dir" in line
  # No OUTDIR: the usage line went on to write /stages.log and start the tests. Extra
  # arguments: they were ignored.
  for script, args, expected in (
      ("gpu_check", [], "error: no OUTDIR; usage: bash .ci/gpu_check OUTDIR [STAGE...]"),
      ("gpu_check", [""], "error: no OUTDIR; usage: bash .ci/gpu_check OUTDIR [STAGE...]"),
      ("gpu_inputs", ["a", "b"], "error: too many arguments (2); usage: bash .ci/gpu_inputs "
       "[FASHION_DIR]"),
      ("gpu_wheels", ["x"], "error: unexpected argument(s) 'x'; usage: bash .ci/gpu_wheels "
       "(no arguments)"),
  ):
    proc = subprocess.run(["bash", os.path.join(ROOT, ".ci", script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr.splitlines()) == (2, [expected]), (script, proc.stderr)
  assert os.listdir(tmp_path) == []


def _processes_with(marker: str) -> list[str]:
  """The PIDs of the processes whose environment holds `marker`."""
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/environ", "rb") as f:
        if marker.encode() in f.read():
          found.append(pid)
    except OSError:
      pass
  return found


def test_gpu_check_fails_with_its_stages_and_stops_them_when_stopped(tmp_path):
  """.ci/gpu_check exited 0 when a stage failed, and when stopped (an outer timeout's SIGTERM)
  left the running stage's processes behind, in their own process group."""
  bin_dir = os.path.dirname(sys.executable)  # python3: this venv's, with JAX
  marker = f"GPU_CHECK_TEST={os.getpid()}-{tmp_path.name}"
  env = {
      **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GPU_CHECK_ON_CPU": "1",
      "TESTS_WORKERS": "1", "GPU_CHECK_TEST": marker.split("=")[1]
  }
  # The env stage fails on a CPU (it asks PyTorch for CUDA): exit status 1, archive written.
  proc = subprocess.run(
      ["bash", ".ci/gpu_check", str(tmp_path / "a"), "env"], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=120)
  assert proc.returncode == 1, proc.stderr
  log = (tmp_path / "a" / "stages.log").read_text()
  assert "env: rc=1" in log and "failed: env" in log
  assert (tmp_path / "a" / "gpu_check.tar.gz").exists()
  # SIGTERM to the script while its tests stage runs: the stage is stopped, then the script.
  proc = subprocess.Popen(
      ["bash", ".ci/gpu_check", str(tmp_path / "b"), "tests"], cwd=ROOT, env=env,
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 60
  while len(_processes_with(marker)) < 3:  # the script, timeout, pytest
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=60) == 128 + signal.SIGTERM
  deadline = time.time() + 20
  while _processes_with(marker):
    assert time.time() < deadline, _processes_with(marker)
    time.sleep(0.1)
  assert "stopped by SIGTERM during a stage" in (tmp_path / "b" / "stages.log").read_text()
