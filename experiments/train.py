r"""Train and evaluate one configuration.

  python -m experiments.train --config=configs/digits_inception.py:reduced --workdir=runs/digits/reduced

Rerunning the same command resumes from the latest checkpoint; a finished workdir is not
trained again. Override any field: --config.optimizer.learning_rate=0.01. A workdir whose run
has checkpoints refuses another config; --restart sets that run aside (under WORKDIR/.set_aside/,
nothing is deleted) and starts again.
"""

import jax
from absl import flags, logging
from ml_collections import config_flags

from bottleneck.train import loop
from bottleneck.util import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, result.",
                               required=True)
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_RESTART = flags.DEFINE_bool(
    "restart", False, "Set the workdir's previous run aside (WORKDIR/.set_aside/) and start "
    "again, e.g. with a corrected config.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-host: call jax.distributed.initialize() first (coordinator "
    "from the environment or the cluster's auto-detection, e.g. SLURM, Cloud TPU).")


def main(argv):
  del argv
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.info("JAX process %d / %d, local devices %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  loop.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value, restart=_RESTART.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
