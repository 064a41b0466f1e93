"""MNIST and Fashion-MNIST from their four original IDX files, offline when the files are on disk.

`--config.dataset=fashion_mnist` (or `mnist`) finds the files, in this order:
  1. in `--config.data.source_dir=DIR`, when given (and nowhere else);
  2. where a system package puts them: Debian's `dataset-fashion-mnist`
     (`apt-get install dataset-fashion-mnist`) installs Fashion-MNIST's four files under
     `/usr/share/datasets/fashion-mnist/`;
  3. else through TFDS's download manager, from the URLs TFDS's own `mnist` and `fashion_mnist`
     builders use (a machine online).

Each file may be gzipped (`train-images-idx3-ubyte.gz`) or not. Every file is checked before
anything is written: its decompressed size and sha256 against the published content (`RAW`), so
that a truncated, corrupt or wrong file is one error naming it. The content is checked rather
than the `.gz` archive because archives of the same content differ: Debian recompressed the
Fashion-MNIST files (its `.gz` sha256s differ from the ones TFDS's checksums list for the
publisher's archives), while the decompressed files are byte for byte the published ones. The
`RAW` digests are those of the decompressed publisher archives (whose MD5s the datasets' pages
give), as listed by several independent projects; the Debian files match them.

The data is stored as the embedded digits are (TFDS `array_record`, random access, no
TensorFlow), as the datasets `mnist_idx` / `fashion_mnist_idx` in the TFDS data directory:
60,000 training and 10,000 test images, 28x28x1 uint8, with the class names (the order is
TFDS's, a fixed shuffle of the files' order).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import urllib.parse
import zlib

import numpy as np
import tensorflow_datasets as tfds

from bottleneck.util.errors import ConfigError

# The four files: (split, kind) -> file name without ".gz".
FILES = {("train", "images"): "train-images-idx3-ubyte",
         ("train", "labels"): "train-labels-idx1-ubyte",
         ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}
SIZES = {
    "train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008
}
# sha256 of each decompressed file, as published (see the module docstring).
RAW = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # noqa: E501
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # noqa: E501
    },
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # noqa: E501
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # noqa: E501
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # noqa: E501
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # noqa: E501
    },
}
# Where a system package installs the files, and the URLs TFDS's builders download.
SYSTEM_DIRS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist",), "mnist": ()}
URLS = {
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/"
}
PASS_SOURCE_DIR = "--config.data.source_dir=DIR (to experiments.evaluate: --source_dir=DIR)"
HOW_TO_GET = {
    "fashion_mnist": "apt-get install dataset-fashion-mnist (Debian, Ubuntu), or download the "
                     "four files from https://github.com/zalandoresearch/fashion-mnist into a "
                     "directory and pass " + PASS_SOURCE_DIR,
    "mnist": "download the four files (e.g. from " + URLS["mnist"] + ") into a directory and "
             "pass " + PASS_SOURCE_DIR,
}
LABEL_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(i) for i in range(10)),
}
MAGIC = {"images": 2051, "labels": 2049}  # 0x00000803: uint8, 3 dims; 0x00000801: 1 dim


def _find(directory: str, name: str) -> str | None:
  for candidate in (name, name + ".gz"):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  return None


def locate(dataset: str, source_dir: str | None) -> dict[str, str] | None:
  """Paths of the four files (by file name): from `source_dir` when given (a ConfigError when
  any is missing there), else from the first system directory that has all four, else None."""
  names = list(FILES.values())
  if source_dir:
    if not os.path.isdir(source_dir):
      raise ConfigError(f"data.source_dir={source_dir!r} is not a directory; it should hold "
                        f"the four IDX files of {dataset!r} ({', '.join(names)}, each may be "
                        "gzipped).")
    found = {n: _find(source_dir, n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
      raise ConfigError(f"data.source_dir={source_dir!r} lacks {', '.join(missing)} (or "
                        f"the same with .gz) of dataset {dataset!r}.")
    return found
  for directory in SYSTEM_DIRS[dataset]:
    found = {n: _find(directory, n) for n in names}
    if all(found.values()):
      return found
  return None


def read_verified(path: str, name: str, sha256: str | None) -> bytes:
  """The decompressed content of `path`, checked against the published size and `sha256`
  (None: the size and the IDX header only); a ConfigError naming the file otherwise."""
  try:
    with open(path, "rb") as f:
      data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip
      data = gzip.decompress(data)
  except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise ConfigError(f"{path} cannot be read as {name} (truncated or not gzip?): "
                      f"{type(e).__name__}: {e}") from None
  if sha256 is not None and len(data) != SIZES[name]:
    raise ConfigError(f"{path} holds {len(data):,} bytes once decompressed; {name} has "
                      f"{SIZES[name]:,}: the file is truncated or another file.")
  if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
    raise ConfigError(f"{path} is not the published {name}: its sha256 is "
                      f"{hashlib.sha256(data).hexdigest()}, not {sha256}.")
  return data


def parse(data: bytes, kind: str, path: str) -> np.ndarray:
  """The array of an IDX file's content: (n, rows, cols) uint8 images or (n,) uint8 labels."""
  dims = 3 if kind == "images" else 1
  header = 4 + 4 * dims
  if len(data) < header or int.from_bytes(data[:4], "big") != MAGIC[kind]:
    raise ConfigError(f"{path} is not an IDX {kind} file: its first bytes are "
                      f"{data[:4].hex()}, not {MAGIC[kind]:08x}.")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
  if len(data) - header != int(np.prod(shape)):
    raise ConfigError(f"{path}: its header says {shape}, which is {int(np.prod(shape)):,} "
                      f"bytes, but {len(data) - header:,} follow: truncated.")
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_splits(dataset: str, files: dict[str, str],
                checksums: dict[str, str] | None = None) -> dict[str, tuple[np.ndarray, ...]]:
  """{"train": (images (n, 28, 28, 1), labels (n,)), "test": ...}, every file verified first
  (against `checksums`, default `RAW[dataset]`)."""
  checksums = RAW[dataset] if checksums is None else checksums
  arrays = {
      key: parse(read_verified(files[name], name, checksums.get(name)), key[1], files[name])
      for key, name in FILES.items()
  }
  out = {}
  for split in ("train", "test"):
    images, labels = arrays[(split, "images")], arrays[(split, "labels")]
    if len(images) != len(labels):
      raise ConfigError(f"{files[FILES[(split, 'images')]]} holds {len(images)} images but "
                        f"{files[FILES[(split, 'labels')]]} {len(labels)} labels.")
    if labels.size and labels.max() >= len(LABEL_NAMES[dataset]):
      raise ConfigError(f"{files[FILES[(split, 'labels')]]} has label {labels.max()}; "
                        f"{dataset!r} has {len(LABEL_NAMES[dataset])} classes.")
    out[split] = (images[..., None], labels)
  return out


def behind_proxy() -> bool:
  """Whether downloads go through a proxy (which resolves names itself, so that a host that
  does not resolve here may still be reachable)."""
  return any(
      os.environ.get(v)
      for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"))


def check_reachable(dataset: str, timeout: float = 10.0) -> None:
  """A ConfigError at once when the files are nowhere on disk and their host is unreachable
  (behind a proxy, nothing is checked)."""
  if behind_proxy():
    return
  url = urllib.parse.urlparse(URLS[dataset])
  try:
    socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                             timeout=timeout).close()
  except OSError as e:
    where = " or ".join(SYSTEM_DIRS[dataset]) or "no system directory"
    raise ConfigError(f"dataset {dataset!r}: its four IDX files are not on disk ({where}; "
                      f"no data.source_dir given) and {url.hostname} is unreachable "
                      f"({e}). To get them: {HOW_TO_GET[dataset]}.") from None


class _IdxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A TFDS builder over the four IDX files of `DATASET` (module docstring)."""

  DATASET = ""
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def __init__(self, *, source_dir: str | None = None, checksums: dict | None = None, **kwargs):
    self.source_dir, self.checksums = source_dir, checksums
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=f"{self.DATASET} from its four IDX files (bottleneck.data.idx).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=LABEL_NAMES[self.DATASET]),
        }),
        supervised_keys=("image", "label"),
        homepage=URLS[self.DATASET],
    )

  def _split_generators(self, dl_manager):
    files = locate(self.DATASET, self.source_dir)
    if files is None:
      check_reachable(self.DATASET)
      downloaded = dl_manager.download({n: URLS[self.DATASET] + n + ".gz" for n in FILES.values()})
      files = {n: os.fspath(p) for n, p in downloaded.items()}
    arrays = read_splits(self.DATASET, files, self.checksums)  # all verified before writing
    return {split: self._generate_examples(*arrays[split]) for split in ("train", "test")}

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}


class FashionMnistIdx(_IdxBuilder):
  """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from its IDX files."""
  name = "fashion_mnist_idx"
  DATASET = "fashion_mnist"


class MnistIdx(_IdxBuilder):
  """MNIST from its IDX files."""
  name = "mnist_idx"
  DATASET = "mnist"


BUILDERS = {"fashion_mnist": FashionMnistIdx, "mnist": MnistIdx}
