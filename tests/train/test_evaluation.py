"""`experiments.evaluate`: a saved model's accuracy with its own preprocessing; ImageNet models
on datasets of ImageNet synsets."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import nnx

from bottleneck.data import pipeline
from bottleneck.train import evaluation, loop, saved_models
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError
from tests import commands
from tests.tiny_train_config import get_config as tiny_config


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits_dir):
  workdir = str(tmp_path_factory.mktemp("eval") / "run")
  config = tiny_config()
  config.data_dir = digits_dir
  return workdir, loop.train_and_evaluate(config, workdir)


def test_a_training_run_evaluates_to_its_own_result(digits_run):
  workdir, result = digits_run
  proc = commands.run("experiments.evaluate", f"--workdir={workdir}", "--batch_size=7",
                      "--format=json")
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["dataset"] == "digits" and out["split"] == "test"
  assert out["examples"] == out["examples_in_split"] == 450
  assert out["top1"] == pytest.approx(result["eval_accuracy"], abs=1e-9)
  assert out["top5"] >= out["top1"] and out["top1_among_dataset_classes"] is None
  assert wd.read_json(os.path.join(workdir, evaluation.EVALUATION, "digits-test.json")) == out
  few = evaluation.evaluate(workdir, max_examples=10)
  assert few["examples"] == 10 and few["examples_in_split"] == 450


def test_label_map_of_imagenet_synsets():
  synsets = evaluation.imagenet_synsets()
  assert len(synsets) == 1000 and len(set(synsets)) == 1000
  assert synsets[0] == "n01440764" and synsets[-1] == "n15075141"  # tench, toilet tissue
  mapping = evaluation.label_map("imagenette", ["n01440764", "n03000684"], 2, 1000)
  assert mapping.tolist() == [0, synsets.index("n03000684")]
  assert evaluation.label_map("digits", None, 10, 10) is None
  with pytest.raises(ConfigError, match="dataset 'digits' has 10 classes and the model 1000"):
    evaluation.label_map("digits", [str(i) for i in range(10)], 10, 1000)


def test_imagenet_model_on_imagenette(small_googlenet_dir, tmp_path):
  """An ImageNet-1k model on TFDS's imagenette (mock data, offline): labels mapped by synset,
  images preprocessed as the weights expect (resize, centre crop, ImageNet statistics)."""
  with tfds.testing.mock_data(num_examples=12):
    out = evaluation.evaluate(small_googlenet_dir, dataset="imagenette", split="validation",
                              batch_size=5, data_dir=str(tmp_path))
    split = pipeline.load_splits("imagenette", ("validation",), str(tmp_path))["validation"]
    images, labels = split.read(range(len(split)))
  assert out["examples"] == 12 and out["preprocess"]["resize_to"] == 73
  # The same numbers computed another way: the synsets' line numbers in TFDS's list.
  with open(os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012",
                         "labels.txt")) as f:
    line = {s.strip(): i for i, s in enumerate(f)}
  target = np.asarray([line[split.label_names[k]] for k in labels])
  model = saved_models.load(small_googlenet_dir).model
  x = pipeline.Preprocess(64, 3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                          resize="resize", resize_to=73)(images, train=False)
  logits = np.asarray(nnx.jit(lambda m, v: m(v))(model, jnp.asarray(x)))
  assert out["top1"] == np.mean(np.argmax(logits, -1) == target)
  assert out["top5"] == np.mean([t in np.argsort(-row)[:5] for row, t in zip(logits, target)])
  among = np.full(1000, -np.inf)
  among[[line[n] for n in split.label_names]] = 0
  assert out["top1_among_dataset_classes"] == np.mean(np.argmax(logits + among, -1) == target)


def test_bad_input(digits_run, tmp_path):
  workdir, _ = digits_run
  with pytest.raises(ConfigError, match="--batch_size=0 is invalid"):
    evaluation.evaluate(workdir, batch_size=0)
  with pytest.raises(ConfigError, match="holds no model"):
    evaluation.evaluate(str(tmp_path))
  with pytest.raises(ConfigError, match="no split 'validation'"):
    evaluation.evaluate(workdir, split="validation")
