"""bottleneck: what 1x1 reduction convolutions buy in Inception-style networks."""

import re

from setuptools import find_packages, setup

with open("bottleneck/__init__.py") as f:
  version = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

setup(
    name="bottleneck-inception",  # "bottleneck" on PyPI is an unrelated NumPy accelerator
    version=version,
    description="Measure what 1x1 bottleneck convolutions buy in Inception-style networks.",
    packages=find_packages(include=["bottleneck", "bottleneck.*", "experiments", "configs"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.7",
        "flax>=0.12",
        "optax>=0.2",
        "tensorflow-datasets>=4.9.9",
        "importlib_resources",  # TFDS builders need it (etils.epath) but do not declare it
        "absl-py",
        "ml_collections>=1.0",
        "orbax-checkpoint>=0.11",
        "tensorboardX>=2.6",
        "matplotlib>=3.8",
        "pandas>=2.2",
        "tabulate>=0.9",  # pandas' to_markdown renders through it
        "scikit-learn>=1.4",  # ships the offline digits dataset
        "scipy>=1.10",  # Student's t and normal quantiles of the intervals (scikit-learn needs it too)
    ],
    entry_points={"console_scripts": ["bottleneck-report=experiments.report:entry_point"]},
    extras_require={
        # Ray: the sweep's Ray launcher is tested. pytest-xdist runs the suite on every core
        # (pytest.ini): its time is compilation and process start-ups, one core at a time.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ray>=2.9"],
        # TFDS needs TensorFlow to download and decode catalog image datasets (mnist, cifar10,
        # imagenette, ...); the embedded digits need none.
        "catalog": ["tensorflow-cpu>=2.16"],
        # --launcher=ray of experiments.sweep.
        "ray": ["ray>=2.9"],
        # the PyTorch peer of experiments.benchmark (a CPU build of this version is on disk
        # on this project's machines; an unpinned torch would pull a multi-GB CUDA build)
        # torchvision: its googlenet and inception_v3 are the references the tests compare with
        # (PyPI's wheel is a CUDA build; bottleneck.nn.import_weights imports its models anyway).
        "torch": ["torch==2.13.0", "torchvision==0.28.0"],
        # Keras's InceptionV3, the reference the Keras weight loader is tested against
        # (experiments.import_weights --source=keras); Keras 3 runs on JAX, no TensorFlow.
        "keras": ["keras>=3.5"],
    },
)
