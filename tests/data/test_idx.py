"""Fashion-MNIST and MNIST from their IDX files: found, verified, stored, refused by name when
wrong. The tests write small IDX files of their own (no dataset is needed)."""

import gzip
import hashlib
import os

import numpy as np
import pytest

from bottleneck.data import idx, pipeline
from bottleneck.train import records, run_config
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError


def idx_bytes(array: np.ndarray) -> bytes:
  magic = idx.MAGIC["images" if array.ndim == 3 else "labels"]
  return (magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
          + array.astype(np.uint8).tobytes())


def write_idx_files(directory, n_train=40, n_test=20, gz=True, seed=0):
  """Four small IDX files (gzipped or not) in `directory`; returns their checksums as
  `read_splits` takes them, and the arrays."""
  rng = np.random.default_rng(seed)
  arrays = {
      "train": (rng.integers(0, 256, (n_train, 28, 28),
                             dtype=np.uint8), np.arange(n_train, dtype=np.uint8) % 10),
      "test": (rng.integers(0, 256, (n_test, 28, 28),
                            dtype=np.uint8), np.arange(n_test, dtype=np.uint8) % 10)
  }
  os.makedirs(directory, exist_ok=True)
  sums = {}
  for (split, kind), name in idx.FILES.items():
    data = idx_bytes(arrays[split][0 if kind == "images" else 1])
    sums[name] = hashlib.sha256(data).hexdigest()
    with open(os.path.join(directory, name + (".gz" if gz else "")), "wb") as f:
      f.write(gzip.compress(data) if gz else data)
  return sums, arrays


@pytest.fixture
def small_sizes(monkeypatch):
  """The published sizes replaced by those of `write_idx_files`' defaults."""
  monkeypatch.setattr(
      idx, "SIZES", {
          "train-images-idx3-ubyte": 16 + 40 * 784, "train-labels-idx1-ubyte": 8 + 40,
          "t10k-images-idx3-ubyte": 16 + 20 * 784, "t10k-labels-idx1-ubyte": 8 + 20
      })


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_are_read_verified_and_stored(tmp_path, small_sizes, gz):
  sums, arrays = write_idx_files(tmp_path / "files", gz=gz)
  builder = idx.FashionMnistIdx(data_dir=str(tmp_path / "tfds"), file_format="array_record",
                                source_dir=str(tmp_path / "files"), checksums=sums)
  builder.download_and_prepare()
  splits = {s: pipeline.Split(s, builder.as_data_source(split=s), 10) for s in ("train", "test")}
  assert (len(splits["train"]), len(splits["test"])) == (40, 20)
  assert builder.info.features["label"].names[0] == "T-shirt/top"
  images, labels = splits["test"].read(range(20))
  assert images[0].shape == (28, 28, 1) and images[0].dtype == np.uint8
  ours = sorted((int(l), im.tobytes()) for l, im in zip(labels, images))  # TFDS shuffles order
  theirs = sorted((int(l), im[..., None].tobytes()) for im, l in zip(*arrays["test"]))
  assert ours == theirs


def test_a_wrong_truncated_or_corrupt_file_is_refused_by_name(tmp_path, small_sizes):
  sums, _ = write_idx_files(tmp_path)
  files = idx.locate("fashion_mnist", str(tmp_path))
  assert idx.read_splits("fashion_mnist", files, sums)["train"][0].shape == (40, 28, 28, 1)
  name = "t10k-images-idx3-ubyte"
  path = files[name]
  good = open(path, "rb").read()
  open(path, "wb").write(good[:len(good) // 2])  # a truncated download
  with pytest.raises(ConfigError, match=rf"{path} cannot be read as {name} \(truncated"):
    idx.read_splits("fashion_mnist", files, sums)
  raw = gzip.decompress(good)
  open(path, "wb").write(gzip.compress(raw[:-100]))  # complete gzip, truncated content
  with pytest.raises(ConfigError, match=rf"{path} holds 15,596 bytes .* {name} has 15,696"):
    idx.read_splits("fashion_mnist", files, sums)
  open(path, "wb").write(gzip.compress(raw[:-1] + bytes([raw[-1] ^ 1])))  # one bit flipped
  with pytest.raises(ConfigError, match=rf"{path} is not the published {name}: its sha256"):
    idx.read_splits("fashion_mnist", files, sums)
  # the published checksums refuse the test's own files: they are not Fashion-MNIST
  open(path, "wb").write(good)
  with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte.gz is not the published"):
    idx.read_splits("fashion_mnist", files)


def test_nothing_is_written_when_a_file_is_bad(tmp_path, small_sizes):
  sums, _ = write_idx_files(tmp_path / "files")
  os.remove(tmp_path / "files" / "train-labels-idx1-ubyte.gz")
  with pytest.raises(
      ConfigError, match=r"lacks train-labels-idx1-ubyte \(or the same with "
      r"\.gz\) of dataset 'fashion_mnist'"):
    pipeline.load_splits("fashion_mnist", data_dir=str(tmp_path / "tfds"),
                         source_dir=str(tmp_path / "files"))
  write_idx_files(tmp_path / "files", n_train=41)  # 41 images: sizes differ from the sums
  with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte.gz holds"):
    pipeline.load_splits("fashion_mnist", data_dir=str(tmp_path / "tfds"),
                         source_dir=str(tmp_path / "files"))
  assert not idx.FashionMnistIdx(data_dir=str(tmp_path / "tfds")).is_prepared()
  with pytest.raises(ConfigError, match=r"data.source_dir='/no/such' is not a directory"):
    pipeline.load_splits("mnist", data_dir=str(tmp_path / "tfds"), source_dir="/no/such")
  with pytest.raises(
      ConfigError, match=r"dataset 'cifar10' is not read from files; only "
      r"fashion_mnist, mnist are"):
    pipeline.load_splits("cifar10", source_dir=str(tmp_path / "files"))


def test_parse_refuses_what_is_not_idx(tmp_path):
  with pytest.raises(ConfigError, match=r"f: is not an IDX images file: its first bytes are "
                     r"00000801"):
    idx.parse(idx_bytes(np.zeros(3)), "images", "f:")
  with pytest.raises(ConfigError, match=r"header says \(2, 28, 28\), which is 1,568 bytes, "
                     r"but 1,567 follow"):
    idx.parse(idx_bytes(np.zeros((2, 28, 28)))[:-1], "images", "f")
  labels = idx_bytes(np.array([1, 12]))
  sums = {n: None for n in idx.FILES.values()}
  files = {}
  for (_, kind), name in idx.FILES.items():
    files[name] = str(tmp_path / name)
    (tmp_path / name).write_bytes(labels if kind == "labels" else idx_bytes(np.zeros((2, 28, 28))))
  with pytest.raises(ConfigError, match=r"has label 12; 'mnist' has 10 classes"):
    idx.read_splits("mnist", files, sums)


def test_offline_without_files_says_how_to_get_them(tmp_path, monkeypatch):

  def unreachable(address, timeout=None):
    raise OSError(f"[Errno -3] Temporary failure in name resolution: {address[0]}")

  for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
    monkeypatch.delenv(v, raising=False)
  monkeypatch.setattr(idx.socket, "create_connection", unreachable)
  monkeypatch.setattr(idx, "SYSTEM_DIRS", {"fashion_mnist": (str(tmp_path / "none"),), "mnist": ()})
  with pytest.raises(
      ConfigError, match=r"dataset 'fashion_mnist': its four IDX files are not "
      r"on disk .* unreachable .* apt-get install "
      r"dataset-fashion-mnist"):
    pipeline.load_splits("fashion_mnist", data_dir=str(tmp_path / "tfds"))


@pytest.mark.skipif(not os.path.isdir(idx.SYSTEM_DIRS["fashion_mnist"][0]),
                    reason="dataset-fashion-mnist is not installed")
def test_the_debian_files_are_the_published_fashion_mnist():
  """Where the Debian package is installed, its (recompressed) files hold the published
  content: what `idx.RAW` says, and 6,000 / 1,000 images of each class."""
  files = idx.locate("fashion_mnist", None)
  arrays = idx.read_splits("fashion_mnist", files)
  assert arrays["train"][0].shape == (60000, 28, 28, 1)
  assert np.bincount(arrays["train"][1]).tolist() == [6000] * 10
  assert np.bincount(arrays["test"][1]).tolist() == [1000] * 10


def test_source_dir_is_a_config_field_that_does_not_change_what_is_computed(tmp_path):
  config = run_config.default_config()
  config.data.source_dir = str(tmp_path)
  run_config.validate(config)
  assert pipeline.Preprocess.from_config(config, 1).image_size == config.image_size
  other = run_config.default_config()
  assert records.differences(run_config.record(other), run_config.record(config)) == []
  config.data.source_dir = ""
  with pytest.raises(ConfigError, match=r"data.source_dir='' is invalid"):
    run_config.validate(config)


def test_a_run_trains_on_fashion_mnist_from_its_files(tmp_path, small_sizes, monkeypatch, caplog):
  """`--config.dataset=fashion_mnist --config.data.source_dir=DIR`, end to end (small files
  whose checksums stand in for the published ones)."""
  from bottleneck.train import loop
  from tests import tiny_train_config
  sums, _ = write_idx_files(tmp_path / "files")
  monkeypatch.setitem(idx.RAW, "fashion_mnist", sums)
  config = tiny_train_config.get_config(
      **{
          "dataset": "fashion_mnist", "data_dir": str(
              tmp_path / "tfds"), "image_size": 28, "data.source_dir": str(tmp_path / "files"),
          "batch_size": 8, "eval_batch_size": 8, "num_train_steps": 4, "bn_stats_batches": 2
      })
  result = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert result["dataset"] == "fashion_mnist" and 0 <= result["eval_accuracy"] <= 1
  predicted, labels = wd.read_predictions(str(tmp_path / "run" / wd.PREDICTIONS))
  assert len(predicted) == len(labels) == 20  # every test example, in the split's order
  assert np.mean(predicted == labels) == pytest.approx(result["eval_accuracy"])
  # a training subset, as TFDS slices splits
  sub = pipeline.load_splits("fashion_mnist", ("train[:10]", "train[50%:]"), str(tmp_path / "tfds"))
  assert (len(sub["train[:10]"]), len(sub["train[50%:]"])) == (10, 20)
  with pytest.raises(ConfigError, match=r"split 'train\[abc\]' is not a split or a slice"):
    pipeline.load_splits("fashion_mnist", ("train[abc]",), str(tmp_path / "tfds"))
  # Prepared already: a source_dir that is gone is not needed, and not passed over in silence.
  caplog.set_level("INFO")
  pipeline.load_splits("fashion_mnist", ("test",), str(tmp_path / "tfds"), "/no/such")
  assert "is prepared in" in caplog.text and "data.source_dir='/no/such' (it is not a " \
      "directory) is not read" in caplog.text


def test_a_run_is_evaluated_from_files_given_to_the_evaluation(tmp_path, small_sizes, monkeypatch):
  """experiments.evaluate's --source_dir: the files for a data directory where the dataset is
  not prepared yet, another dataset's (MNIST for a Fashion-MNIST run) or the run's moved."""
  from bottleneck.train import evaluation, loop
  from tests import tiny_train_config
  fashion, _ = write_idx_files(tmp_path / "fashion")
  mnist, _ = write_idx_files(tmp_path / "mnist", seed=1)
  monkeypatch.setitem(idx.RAW, "fashion_mnist", fashion)
  monkeypatch.setitem(idx.RAW, "mnist", mnist)
  config = tiny_train_config.get_config(
      **{
          "dataset": "fashion_mnist", "data_dir": str(
              tmp_path / "tfds"), "image_size": 28, "data.source_dir": str(tmp_path / "fashion"),
          "batch_size": 8, "eval_batch_size": 8, "num_train_steps": 2, "bn_stats_batches": 1
      })
  run = str(tmp_path / "run")
  result = loop.train_and_evaluate(config, run)
  os.rename(tmp_path / "fashion", tmp_path / "moved")
  with pytest.raises(ConfigError, match=r"data.source_dir='.*fashion' is not a directory"):
    evaluation.evaluate(run, data_dir=str(tmp_path / "other"))
  # The run's recorded data directory gone too: nothing is prepared or created there (loading
  # the model prepared the recorded dataset just to learn its class count).
  os.rename(tmp_path / "tfds", tmp_path / "tfds gone")
  elsewhere = evaluation.evaluate(run, data_dir=str(tmp_path / "elsewhere"),
                                  source_dir=str(tmp_path / "moved"))
  assert elsewhere["top1"] == pytest.approx(result["eval_accuracy"])
  assert not (tmp_path / "tfds").exists()
  again = evaluation.evaluate(run, data_dir=str(tmp_path / "other"),
                              source_dir=str(tmp_path / "moved"))
  assert again["top1"] == pytest.approx(result["eval_accuracy"])
  on_mnist = evaluation.evaluate(run, dataset="mnist", data_dir=str(tmp_path / "other"),
                                 source_dir=str(tmp_path / "mnist"))
  assert on_mnist["dataset"] == "mnist" and on_mnist["examples"] == 20
