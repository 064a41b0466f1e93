"""A model saved in a directory, ready to use: a training workdir, or weights imported from
another framework (`experiments.import_weights`).

Both kinds have the same layout (`docs/workdirs.md`): `config.json` (the run config that builds
the model) and `checkpoints/<step>/` (orbax). A training workdir's checkpoints hold the model
and the optimizer, and the number of classes is its dataset's. An imported directory also has
`imported.json` (where the weights came from, the number of classes, the preprocessing the
weights expect) and one checkpoint, at step 0, holding the model alone. Training refuses such a
directory, so that nothing overwrites or sets aside the imported weights.

`load(directory)` builds the model from `config.json`, restores its newest readable checkpoint
and returns it in eval mode, with clear errors for a directory that holds no model, a missing
or unreadable checkpoint, or a corrupt `config.json`. It only reads.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import shutil
import tempfile

import ml_collections
from absl import logging
from flax import nnx

from bottleneck.data import pipeline
from bottleneck.measure import complexity
from bottleneck.nn import import_weights, registry
from bottleneck.train import builders, checkpoints, run_config
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError

IMPORTED = wd.IMPORTED
IMPORTED_KEYS = ("source", "weights", "model", "num_classes", "preprocess")


@dataclasses.dataclass
class Trained:
  """A loaded model (eval mode), the config that built it, the checkpoint step it came from and,
  for imported weights, what `imported.json` says (None for a training workdir)."""
  model: nnx.Module
  config: ml_collections.ConfigDict
  step: int
  imported: dict | None

  @property
  def preprocess(self) -> pipeline.Preprocess:
    """The preprocessing the model was trained with: the config's, or the reference's."""
    if self.imported is not None:
      return pipeline.Preprocess(channels=self.model.in_channels, **self.imported["preprocess"])
    return pipeline.Preprocess.from_config(self.config, self.model.in_channels)


def read_imported(directory: str) -> dict | None:
  """`imported.json` of `directory`, or None when it has none."""
  path = os.path.join(directory, IMPORTED)
  return wd.read_json(path, IMPORTED_KEYS) if os.path.exists(path) else None


def _num_classes(directory: str, config) -> int:
  """The class count of a training run's model: its result's, or its dataset's as the
  dataset's builder describes it. Nothing is read from, prepared in or created at the data
  directories the run recorded: the run may be scored elsewhere, with those gone."""
  path = os.path.join(directory, wd.RESULT)
  if os.path.exists(path):
    try:
      recorded = wd.read_result(path).get("num_classes")
      if recorded is not None:
        return recorded
    except wd.CorruptFile as e:
      logging.warning("%s The class count is taken from the dataset's description.", e)
  return pipeline.class_count(config.dataset)


def load(directory: str) -> Trained:
  """The model saved in `directory` (see the module docstring)."""
  path = os.path.join(directory, wd.CONFIG)
  if not os.path.isdir(directory):
    what = "is a file, not a directory" if os.path.exists(directory) else "does not exist"
    raise ConfigError(f"{directory} {what}: give a training workdir or a directory written by "
                      "experiments.import_weights.")
  if not os.path.exists(path):
    raise ConfigError(f"{directory} holds no model: it has no {wd.CONFIG} (give a training "
                      "workdir or a directory written by experiments.import_weights).")
  config = ml_collections.ConfigDict(wd.read_json(path, ("model", "reduce", "image_size")))
  imported = read_imported(directory)
  num_classes = imported["num_classes"] if imported is not None else _num_classes(directory, config)
  model = builders.build_model(config, num_classes, initialise=False)  # the checkpoint's values
  states = {"model": nnx.state(model)}
  if imported is None:
    optimizer = nnx.Optimizer(model,
                              builders.make_optimizer(config, builders.make_schedule(config, 1, 1)),
                              wrt=nnx.Param)
    states["optimizer"] = nnx.state(optimizer)
  manager = checkpoints.manager(directory, read_only=True)
  steps = manager.all_steps() if manager else []
  if not steps:
    raise ConfigError(f"{directory} holds no checkpoint: train it first.")
  step, restored = checkpoints.restore_latest(manager, states)
  if step is None:
    raise ConfigError(f"every checkpoint in {os.path.join(directory, wd.CHECKPOINTS)} is "
                      "unreadable.")
  nnx.update(model, restored["model"])
  model.eval()
  if step != max(steps):
    logging.warning("%s: loaded the checkpoint at step %d; the newest, step %d, is unreadable",
                    directory, step, max(steps))
  else:
    logging.info("%s: loaded %s from the checkpoint at step %d", directory, config.model, step)
  return Trained(model, config, step, imported)


def check_new(directory: str) -> None:
  """ConfigError unless `directory` is absent or an empty directory."""
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise ConfigError(f"--out={directory} is a file: imported weights go to a new directory.")
  if os.path.isdir(directory) and os.listdir(directory):
    raise ConfigError(f"--out={directory} is not empty: imported weights go to a new "
                      "directory (nothing already there is replaced).")


def write_imported(directory: str, model: nnx.Module, config, imported: dict) -> None:
  """Saves `model` (built from `config`) with its `imported.json` as `directory`, which must
  not exist or be empty: imported weights never replace anything. Everything is written in a
  hidden directory beside it, which is then renamed: a crash leaves no half-written
  `directory`, and of two imports to the same place one is refused."""
  run_config.validate(config)
  missing = [k for k in IMPORTED_KEYS if k not in imported]
  if missing:
    raise ValueError(f"imported.json needs {', '.join(missing)}")
  directory = os.path.abspath(directory)
  refuse_if_taken = functools.partial(check_new, directory)
  refuse_if_taken()
  parent = os.path.dirname(directory)
  wd.ensure_writable(parent, "--out's parent directory")
  staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(directory)}.importing.")
  try:
    wd.write_json(os.path.join(staging, wd.CONFIG), run_config.record(config))
    manager = checkpoints.manager(staging, keep=1)
    checkpoints.save(manager, 0, {"model": nnx.state(model)})
    manager.wait_until_finished()
    manager.close()
    wd.write_json(os.path.join(staging, IMPORTED), imported)
    os.chmod(staging, 0o777 & ~wd.umask())  # mkdtemp's 0700 would lock others out
    refuse_if_taken()
    try:
      os.rename(staging, directory)  # replaces an empty directory; refuses a non-empty one
    except OSError:
      refuse_if_taken()
      raise
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def import_to(directory: str, source: str, name: str, *, random_seed: int | None = None,
              weights_file: str | None = None) -> dict:
  """Imports `source`'s `name` (`import_weights.SOURCES`) into our network and saves it as
  `directory` (`write_imported`); returns its `imported.json`. The weights are the source's
  ImageNet weights (downloaded), `weights_file`, or with `random_seed` the source's own random
  initialization (offline)."""
  spec = import_weights.source_spec(source, name)
  check_new(os.path.abspath(directory))
  config = run_config.default_config()
  config.model, config.image_size = name, spec["image_size"]
  config.reduce = registry.published_reduce(name)
  config.dataset, config.eval_split = "imagenet2012", "validation"
  config.seed = random_seed or 0
  for key, value in spec["model_kwargs"].items():
    config.model_kwargs[key] = value
  # Every value is overwritten by the source's: the model's own initialisers (seconds of
  # compilation) are not needed, only its shapes (`registry.fill_random`).
  model = registry.fill_random(
      registry.abstract_model(name, reduce=config.reduce, image_size=spec["image_size"],
                              num_classes=1000, **spec["model_kwargs"]))
  versions = {}
  if source == "torchvision":
    state, weights, imagenet_stats = import_weights.torchvision_state_dict(
        name, weights_file=weights_file, random_seed=random_seed)
    import_weights.from_torchvision(model, state)
    import torch
    import torchvision
    versions = {
        "torch": torch.__version__, "torchvision": getattr(torchvision, "__version__", None)
    }
  else:
    keras = import_weights.keras()
    if random_seed is not None:
      keras.utils.set_random_seed(random_seed)
    net = import_weights.keras_inception_v3(
        None if random_seed is not None else weights_file or spec["weights"])
    import_weights.from_keras(model, net)
    weights = (f"random initialization (Keras seed {random_seed})" if random_seed is not None else
               os.path.abspath(weights_file) if weights_file else "Keras imagenet")
    imagenet_stats = False
    versions = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
  mean, std = ((import_weights.IMAGENET_MEAN, import_weights.IMAGENET_STD) if imagenet_stats else
               (0.5, 0.5))
  imported = {
      "source": source,
      "weights": weights,
      "model": name,
      "num_classes": 1000,
      "preprocess": dict(image_size=spec["image_size"], resize="resize",
                         resize_to=spec["resize_to"], mean=mean, std=std),
      "published_top1": None if random_seed is not None else spec["top1"],
      "versions": versions,
      "imported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
  }
  write_imported(directory, model, config, imported)
  return imported


def complexity_report(directory: str, *, image_size: int | None = None, xla: bool = True,
                      memory: bool = False, **overrides) -> dict:
  """`experiments.analyze`'s report of the model saved in `directory` (loaded, so a directory
  whose checkpoint does not load is refused), at `image_size` (default its own); `overrides`
  replace model arguments (`dtype` for the memory figures)."""
  loaded = load(directory)
  c = loaded.config
  size = c.image_size if image_size is None else image_size  # 0 is refused, not the own size
  report = complexity.analyze(c.model, reduce=c.reduce, image_size=size,
                              num_classes=loaded.model.num_classes, xla=xla, memory=memory,
                              paths=run_config.model_paths(c),
                              **{**run_config.model_kwargs(c), **overrides})
  return {**report, "workdir": directory, "checkpoint_step": loaded.step}
