"""The test suite. `ROOT` is the repository root (subprocess tests run commands there)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def interruptible():
  """`preexec_fn` for a command that a test interrupts with SIGINT: the default disposition,
  so that Python turns it into its handler even when the suite itself was started with SIGINT
  ignored (a background job of a non-interactive shell), which a child would inherit."""
  import signal  # pylint: disable=g-import-not-at-top
  signal.signal(signal.SIGINT, signal.SIG_DFL)
