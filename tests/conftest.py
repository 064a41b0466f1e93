"""Tests run on the CPU, whatever machine they are on."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
