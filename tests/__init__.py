"""The test suite. `ROOT` is the repository root (subprocess tests run commands there)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def interruptible() -> None:
  """Call before starting a command that a test interrupts with SIGINT. A suite started with
  SIGINT ignored (a background job of a non-interactive shell) passes that on to its
  commands, which then never see the signal; with Python's own handler here instead, a
  command starts with the default disposition (handlers, unlike "ignore", do not survive
  exec). No preexec_fn: running Python in a forked child of a threaded process can deadlock."""
  import signal  # pylint: disable=g-import-not-at-top
  if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
