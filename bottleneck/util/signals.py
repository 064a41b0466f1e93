"""Ctrl-C and SIGTERM (a scheduler's preemption) handled: long work stops at a point where
what it wrote is whole, and says how to resume (docs/workdirs.md)."""

from __future__ import annotations

import os
import signal
import threading
import time

from absl import logging


class Interrupted(KeyboardInterrupt):
  """Ctrl-C or SIGTERM, handled: the work stopped cleanly (checkpoints saved) and the message
  says how to resume."""


class CtrlC:
  """Within the block, a first Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption) only sets
  `pressed` (the signal's name) and logs `what` happens next: the loop that reads it stops
  cleanly (a training checkpoints the step it is at and lets the save finish; interrupting
  orbax in the middle of a save would leave its threads waiting for ever). Nor is a
  KeyboardInterrupt raised where Python would swallow it (in a garbage-collection callback,
  which JAX installs). A second signal raises KeyboardInterrupt at once. Outside the main
  thread (Ray workers) it does nothing; a signal the process was started to ignore (nohup, a
  shell's background job) stays ignored."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, what: str):
    self.what = what
    self.pressed = None  # the name of the signal received
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.pressed:
      raise KeyboardInterrupt("interrupted twice: what was being written may be lost; rerun "
                              "the same command to resume from the checkpoint before.")
    self.pressed = signal.Signals(signum).name
    logging.warning("%s: %s (again to stop at once)", self.pressed, self.what)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {
          s: signal.signal(s, self._handle)
          for s in self.SIGNALS
          if signal.getsignal(s) is not signal.SIG_IGN
      }
    return self

  def __exit__(self, *exc):
    for s, previous in self._previous.items():
      signal.signal(s, previous)
    return False


def end_with_parent(parent_pid: int) -> None:
  """Ends this process (a worker) within a second of its parent's death, which a killed
  parent cannot announce; a watching thread, so that the worker's own work goes on meanwhile."""

  def watch():
    while True:
      time.sleep(0.5)
      if os.getppid() != parent_pid:
        os._exit(3)

  threading.Thread(target=watch, daemon=True).start()
