"""The test suite, and the helpers its files share (they never import each other).

`ROOT` is the repository root (subprocess tests run commands there); `ODD` a directory name
that is not a glob pattern; `interruptible()` for commands a test interrupts; `sigterm_when`
sends SIGTERM at a chosen call; `write_runs(root)` writes a toy sweep's result.json files.
`tests.commands` runs entry points as `python -m` does, forked from a process that has the
libraries imported.
"""

import contextlib
import os
import signal

from bottleneck.util import workdir as wd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ODD = "runs[2] *?ü x"  # glob metacharacters, a space and unicode in one directory name


def interruptible() -> None:
  """Call before starting a command that a test interrupts with SIGINT. A suite started with
  SIGINT ignored (a background job of a non-interactive shell) passes that on to its
  commands, which then never see the signal; with Python's own handler here instead, a
  command starts with the default disposition (handlers, unlike "ignore", do not survive
  exec). No preexec_fn: running Python in a forked child of a threaded process can deadlock."""
  if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def sigterm_when(monkeypatch, module, name, when):
  """Within the block, this process gets SIGTERM as `module.name` is called with arguments for
  which `when(*args)` holds (once). Outside a handler of the run's the signal does nothing."""
  original, sent = getattr(module, name), []

  def wrapper(*args, **kwargs):
    if not sent and when(*args):
      sent.append(True)
      os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)

  monkeypatch.setattr(module, name, wrapper)
  previous = signal.signal(signal.SIGTERM, lambda *_: None)
  try:
    yield sent
  finally:
    signal.signal(signal.SIGTERM, previous)


# A toy sweep: accuracy, train time and cost of three seeds of each variant.
ACC = {"reduced": [0.90, 0.92, 0.94], "naive": [0.91, 0.91, 0.97]}
TIME = {"reduced": [10.0, 12.0, 14.0], "naive": [9.0, 9.0, 9.0]}
COST = {"reduced": (100, 1000), "naive": (300, 5000)}


def write_runs(root, config=None):
  """The toy sweep's result.json files; `config`: the config record each holds (the variant's
  and seed's fields added), none by default."""
  for variant, accs in ACC.items():
    for seed, acc in enumerate(accs):
      params, macs = COST[variant]
      wd.write_json(
          os.path.join(root, f"reduce={variant == 'reduced'},seed={seed}", wd.RESULT), {
              "model": "toy", "dataset": "digits", "reduce": variant == "reduced", "seed": seed,
              "params": params, "macs": macs, "flops_xla": 2.5 * macs, "eval_accuracy": acc,
              "train_time_s": TIME[variant][seed], "examples_per_s": 1000.0 / TIME[variant][seed],
              "compile_time_s": 1.0, "device": "cpu",
              **({} if config is None else {
                     "config": {**config, "reduce": variant == "reduced", "seed": seed}
                 })
          })
