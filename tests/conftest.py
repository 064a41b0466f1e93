"""Tests run on the CPU, whatever machine they are on; the digits dataset is built once."""

import importlib.metadata
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole run, subprocesses included: the many small
# programs of model initialisation compile once instead of once per process.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Tests check correctness, not speed: XLA's CPU backend compiles without LLVM's optimisation
# passes, as `registry.FAST_COMPILE` does for the initialisers. Most programs here run once or
# a few times, so compiling dominates: the cold suite took 4 min 56 s instead of 6 min 33 s.
# The HLO (fusion, buffers, cost model) is the same; a subprocess given its own XLA_FLAGS
# replaces this.
# XLA's legacy LLVM IR emitters for fusions, not its newer MLIR ones, compile in half the time
# (a tiny inception_small's gradient: 1.1 s against 2.2 s); the math is the same ops.
# jax 0.11's XLA no longer has that flag, and an unknown flag in XLA_FLAGS aborts the process
# (seen with jax 0.11.2 on a GPU machine: every test worker died), so only older jax gets it.
_FLAGS = ["--xla_backend_optimization_level=0"]
if tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2]) < (0, 11):
  _FLAGS.append("--xla_cpu_use_fusion_emitters=false")
_MISSING = [f for f in _FLAGS if f.split("=")[0] not in os.environ.get("XLA_FLAGS", "")]
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *_MISSING]).strip()

import pytest  # noqa: E402 (after the environment JAX reads when it starts)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
  """A TFDS data directory holding the embedded digits dataset, built once per session."""
  from bottleneck.data import pipeline
  path = str(tmp_path_factory.mktemp("tfds"))
  pipeline.load_splits("digits", data_dir=path)
  os.environ["BOTTLENECK_TEST_TFDS_DIR"] = path  # for config files that tests load by name
  return path


@pytest.fixture(scope="session")
def small_googlenet_dir(tmp_path_factory):
  """torchvision's GoogLeNet geometry (`googlenet_bn`, 1000 classes) trained at 64x64, random
  weights, saved as imported weights are (`bottleneck.train.saved_models.write_imported`)."""
  from bottleneck.nn import registry
  from bottleneck.train import run_config, saved_models
  config = run_config.default_config()
  config.model, config.image_size, config.dataset = "googlenet_bn", 64, "imagenet2012"
  model = registry.random_model("googlenet_bn", reduce=True, image_size=64, seed=1)
  path = str(tmp_path_factory.mktemp("imported") / "googlenet 64")
  saved_models.write_imported(
      path, model, config, {
          "source": "test", "weights": "random", "model": "googlenet_bn", "num_classes": 1000,
          "preprocess": {
              "image_size": 64, "resize": "resize", "resize_to": 73, "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225]
          }
      })
  return path
