"""Facts about where the code runs: the device, in words, the machine and library versions for
a report, and the compute dtypes by name."""

from __future__ import annotations

import os
import platform

import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."; Linux's `cpuinfo`), else what
  `platform` knows ("x86_64"): figures differ between the two kinds of CPU this project runs
  on, so reports name the kind."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        if line.startswith("model name") and ":" in line:
          return line.split(":", 1)[1].strip() or platform.machine()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def device_description() -> str:
  """e.g. "AMD EPYC CPU (2 cores)", "NVIDIA H100 80GB HBM3", "2 x TPU v4"."""
  devices = jax.local_devices()
  kind = devices[0].device_kind
  if devices[0].platform == "cpu":
    kind = f"{cpu_model()} CPU ({os.cpu_count()} cores)"
  return f"{len(devices)} x {kind}" if len(devices) > 1 else kind


def environment() -> str:
  """The machine and library versions, for a report's header."""
  import flax
  import optax
  import tensorflow_datasets as tfds

  return (f"{platform.platform()}; {device_description()}; Python "
          f"{platform.python_version()}; jax {jax.__version__}, flax {flax.__version__}, "
          f"optax {optax.__version__}, tensorflow-datasets {tfds.__version__}; "
          f"{malloc()}")


def malloc() -> str:
  """Whether this process's malloc runs on huge pages, in words (`bottleneck.util.hugepages`)."""
  from bottleneck.util import hugepages
  return hugepages.state()


CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def use_compilation_cache(directory: str) -> str:
  """JAX's persistent compilation cache in `directory`, unless one is configured already (the
  environment variable, which the tests set): the seeds of one config compile the same
  programs, and a rerun compiles nothing again. Worker processes started later inherit it.
  Returns the directory in use."""
  if os.environ.get(CACHE_ENV) or jax.config.jax_compilation_cache_dir:
    return os.environ.get(CACHE_ENV) or jax.config.jax_compilation_cache_dir
  directory = os.path.abspath(directory)
  os.environ[CACHE_ENV] = directory
  jax.config.update("jax_compilation_cache_dir", directory)
  return directory
