"""The command-line contract of every entry point: bad input is one line on stderr starting with
"error:" and exit status 2, never a traceback. The commands run concurrently, forked from one
process that imported the libraries (`tests.commands`), to keep the suite's time down."""

import os

from bottleneck.util import workdir as wd
from tests import ROOT
from tests.commands import run, run_all

TINY = f"--config={ROOT}/tests/tiny_train_config.py"


def error_lines(stderr: str) -> list[str]:
  return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def test_bad_input_is_one_line_and_exit_status_2(tmp_path, digits_dir):
  (tmp_path / "a_file").write_text("x")
  data = f"--config.data_dir={digits_dir}"
  train = ["experiments.train", TINY, data]
  cases = {
      # (command, what the one line must say)
      "typo": (train + [f"--workdir={tmp_path}/w1", "--config.optimizer.learnin_rate=0.1"],
               "--config.optimizer.learnin_rate: the config has no field "
               "'optimizer.learnin_rate'. Did you mean 'learning_rate'?"),
      "typo_parent": (train + [f"--workdir={tmp_path}/w1", "--config.optimizr.momentum=0.1"],
                      "no field 'optimizr'. Did you mean 'optimizer'?"),
      # model_kwargs take every model argument from the command line; batch_size is refused.
      "kwargs_and_range": (train + [
          f"--workdir={tmp_path}/w2", "--config.model_kwargs.reduction_ratio=0.5",
          "--config.batch_size=-4", "--config.log_every_steps=0"
      ], "batch_size=-4 is invalid; it must be a whole number >= 1. "
                           "log_every_steps=0 is invalid"),
      "wrong_type": (train + [f"--workdir={tmp_path}/w1", "--config.batch_size=abc"],
                     "--config.batch_size=abc: invalid literal for int()"),
      # --distributed with no coordinator was ValueError's traceback; JAX_NUM_PROCESSES, which
      # the docs named, was read by nobody.
      "no_coordinator": (train + [f"--workdir={tmp_path}/w1", "--distributed"],
                         "--distributed: coordinator_address should be defined. Give "
                         "--coordinator_address=HOST:PORT"),
      "process_id": (train + [
          f"--workdir={tmp_path}/w1", "--distributed", "--num_processes=2", "--process_id=2",
          "--coordinator_address=127.0.0.1:1"
      ], "process_id=2 of num_processes=2 is invalid"),
      # "nohost" was an IndexError's traceback; port 0 a 5-minute wait for a coordinator.
      "no_port": (train + [
          f"--workdir={tmp_path}/w1", "--distributed", "--num_processes=2", "--process_id=0",
          "--coordinator_address=nohost"
      ], "coordinator address 'nohost' is invalid; give HOST:PORT"),
      "port_0": (train + [
          f"--workdir={tmp_path}/w1", "--distributed", "--num_processes=1", "--process_id=0",
          "--coordinator_address=127.0.0.1:0"
      ], "coordinator address '127.0.0.1:0' is invalid"),
      "without_distributed": (train + [f"--workdir={tmp_path}/w1", "--num_processes=2"],
                              "--num_processes: only with --distributed."),
      "variant": ([
          "experiments.train", f"--config={ROOT}/configs/digits_inception.py:fast",
          f"--workdir={tmp_path}/w1"
      ], "unknown variant 'fast'; valid: reduced, naive"),
      "missing_config": (["experiments.benchmark", "--config=configs/nope.py"],
                         "No such file or directory: 'configs/nope.py'"),
      # refused before the timings, not after them
      "bench_out_file": ([
          "experiments.benchmark", f"--config={ROOT}/tests/tiny_benchmark_config.py",
          f"--out={tmp_path}/a_file"
      ], "a_file is a file, not a directory"),
      "workdir_file": (train + [f"--workdir={tmp_path}/a_file"], "a_file is a file, not a "
                       "directory"),
      "baseline": (["experiments.throughput", TINY, data,
                    f"--baseline={tmp_path}"], "is not a checkout of this repository"),
      # an --out that another run holds (this test, below): refused, naming the holder
      "bench_out_busy": ([
          "experiments.benchmark", f"--config={ROOT}/tests/tiny_benchmark_config.py",
          f"--out={tmp_path}/busy"
      ], f"busy is in use by PID {os.getpid()}"),
      "throughput_batch": (["experiments.throughput", TINY, data, "--config.batch_size=5000"],
                           "batch_size=5000 is larger than the train split (1347 examples)"),
      "throughput_out_busy": (["experiments.throughput", TINY, data,
                               f"--out={tmp_path}/busy"], f"busy is in use by PID {os.getpid()}"),
      "positional": (["experiments.report", f"--workdir={tmp_path}/r",
                      "extra"], "unexpected argument(s) 'extra'"),
      "study": (["experiments.report", f"--workdir={tmp_path}/r", "--study=ablation:fast"],
                "--study=ablation:fast: unknown variant 'fast'; valid: quick, cifar10, "
                "cluttered"),
      # "--study=" ran the whole main report; an empty --out wrote nothing, silently.
      "empty_study": (["experiments.report", f"--workdir={tmp_path}/r", "--study="],
                      "--study= is empty; give it a value, or leave it out for its default."),
      "ray_without_study": (["experiments.report", f"--workdir={tmp_path}/r",
                             "--ray_address=auto"], "--ray_address apply to --study only"),
      # with a budget, --image_size=0 analysed 32x32 (the model's own size)
      "analyze_size0":
          (["experiments.analyze", "--model=nin", "--image_size=0",
            "--match_macs=5e6"], "nin: image_size=0 is too small; the minimum is 4"),
      "unknown_flag": (["experiments.make_table", "--workdir=x",
                        "--colour=red"], "Unknown command line flag 'colour'"),
      "empty_depths": (["experiments.reduction_cost", "--depths="], "--depths= is empty"),
      # Two devices (the environment below) cannot split a batch of 33.
      "odd_batch": (train + [f"--workdir={tmp_path}/w4", "--config.batch_size=33"],
                    "batch_size=33 is not divisible by the 2 devices; use a multiple of 2"),
      # A diverging run with a checkpoint every step: the message alone, no orbax errors after.
      "diverged": (train + [
          f"--workdir={tmp_path}/w3", "--config.optimizer.learning_rate=1e30",
          "--config.optimizer.momentum=0.0", "--config.checkpoint_every_steps=1",
          "--config.log_every_steps=1", "--config.num_train_steps=6"
      ], "loss became nan at step"),
  }
  with wd.lock(str(tmp_path / "busy"), "--out"):
    results = run_all({name: args for name, (args, _) in cases.items()},
                      envs={"odd_batch": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}})
  for name, (_, expected) in cases.items():
    code, _, stderr = results[name]
    assert code == 2, (name, stderr[-2000:])
    assert "Traceback" not in stderr, (name, stderr[-2000:])
    lines = error_lines(stderr)
    assert len(lines) == 1 and expected in lines[0], (name, stderr[-2000:])
  # nothing written where the input was refused before any work
  assert not os.path.exists(tmp_path / "w1" / "config.json")
  assert not os.path.exists(tmp_path / "w2" / "config.json")
  diverged = results["diverged"][2]
  assert not [ln for ln in diverged.splitlines() if ln.startswith("E") and "orbax" in ln]
  assert "rerun with --restart" in error_lines(diverged)[0]
  assert os.listdir(tmp_path / "busy") == [wd.LOCK]  # the refused runs wrote nothing there
  assert not os.path.exists(tmp_path / "r")


def test_help_still_works():
  proc = run("experiments.train", "--helpshort", timeout=120)
  assert "--workdir" in proc.stdout + proc.stderr


def test_commands_run_as_a_fresh_python_m_would():
  """`tests.commands`: a forked child runs the module with its arguments, status and stderr; a
  child whose environment changes a `JAX_` variable (read as JAX is imported) starts afresh."""
  probe = ("timeit", "-n1", "-r1", "import sys; print('jax' in sys.modules)")
  assert run(*probe).stdout.split()[0] == "True"  # forked: the libraries already imported
  assert run(*probe, env={"JAX_ENABLE_X64": "1"}).stdout.split()[0] == "False"
  refused = run("json.tool", "--no-such-flag")
  assert refused.returncode == 2 and "unrecognized arguments" in refused.stderr
