"""bottleneck: what 1x1 reduction convolutions buy in Inception-style networks.

The package's metadata, dependencies and tool settings are in pyproject.toml; this file stays
for the project's fixed layout and for tools that still call `setup.py`."""

from setuptools import setup

setup()
