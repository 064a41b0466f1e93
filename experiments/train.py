r"""Train and evaluate one configuration.

  python -m experiments.train --config=configs/digits_inception.py:reduced --workdir=runs/digits/reduced

Rerunning the same command resumes from the latest checkpoint; a finished workdir is not
trained again. Override any field: --config.optimizer.learning_rate=0.01. A workdir whose run
has checkpoints refuses another config; --restart sets that run aside (under WORKDIR/.set_aside/,
nothing is deleted) and starts again.
"""

import os

import jax
from absl import flags, logging
from ml_collections import config_flags

from bottleneck.train import loop
from bottleneck.util import cli
from bottleneck.util.errors import ConfigError

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, result.",
                               required=True)
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_RESTART = flags.DEFINE_bool(
    "restart", False, "Set the workdir's previous run aside (WORKDIR/.set_aside/) and start "
    "again, e.g. with a corrected config.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Several processes (hosts), one run: start the same command in each "
    "(docs/training.md). JAX's cluster detection (SLURM, Cloud TPU) finds the others, or the "
    "three flags below.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "--distributed: HOST:PORT where process 0 listens (default "
    "$JAX_COORDINATOR_ADDRESS).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "--distributed: how many (default $JAX_NUM_PROCESSES).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "--distributed: this one's, 0 to N-1 (default $JAX_PROCESS_ID).")


def _distributed() -> None:
  """jax.distributed.initialize from the flags or the environment (JAX itself reads only the
  coordinator's address from it), or one error line saying what is missing."""
  given = [
      f"--{f.name}" for f in (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID) if f.value is not None
  ]
  if not _DISTRIBUTED.value:
    if given:
      raise ConfigError(f"{', '.join(given)}: only with --distributed.")
    return
  env = {  # an empty variable counts as unset
      k: os.environ.get(f"JAX_{k.upper()}") or None
      for k in ("coordinator_address", "num_processes", "process_id")
  }
  address = _COORDINATOR.value or env["coordinator_address"]
  try:
    n = _NUM_PROCESSES.value if _NUM_PROCESSES.value is not None else (
        env["num_processes"] and int(env["num_processes"]))
    i = _PROCESS_ID.value if _PROCESS_ID.value is not None else (env["process_id"]
                                                                 and int(env["process_id"]))
  except ValueError as e:
    raise ConfigError(f"--distributed: JAX_NUM_PROCESSES or JAX_PROCESS_ID is not a whole "
                      f"number ({e}).") from None
  if n is not None and (n < 1 or i is None or not 0 <= i < n):
    raise ConfigError(f"--distributed: process_id={i} of num_processes={n} is invalid; give "
                      "--num_processes=N >= 1 and --process_id from 0 to N-1.")
  host, colon, port = (address or "").rpartition(":")
  if address and not (colon and host and port.isdigit() and 0 < int(port) < 65536):
    raise ConfigError(f"--distributed: coordinator address {address!r} is invalid; give "
                      "HOST:PORT with a port from 1 to 65535 (e.g. 10.0.0.1:12345).")
  if address:  # process 0 may start later: the others wait for it, up to JAX's 5 minutes
    logging.info("process %s of %s: waiting for the coordinator at %s (up to 5 minutes)", i, n,
                 address)
  try:
    jax.distributed.initialize(address, n, i)
  except (ValueError, RuntimeError) as e:
    raise ConfigError(
        f"--distributed: {str(e).splitlines()[0]} Give --coordinator_address=HOST:PORT, "
        "--num_processes=N and --process_id=I (or $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, "
        "$JAX_PROCESS_ID), or run where JAX detects the cluster (SLURM, Cloud TPU).") from None


def main(argv):
  del argv
  _distributed()
  logging.info("JAX process %d / %d, local devices %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  loop.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value, restart=_RESTART.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
