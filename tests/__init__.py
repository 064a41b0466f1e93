"""The test suite. `ROOT` is the repository root (subprocess tests run commands there)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
