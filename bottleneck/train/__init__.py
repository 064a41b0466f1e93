"""Training: the config and its defaults (`defaults`, `run_config`), the loop (`loop`), seeds
trained together, checkpoints, sweeps, saved models and their evaluation, the loop's throughput.
Imports `measure`, `nn`, `data` and `util` (docs/training.md)."""
