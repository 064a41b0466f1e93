"""The errors a user can correct: each is said as one `error:` line with exit status 2 by the
entry points (`cli.run`), never as a traceback. Everything else is a bug and keeps its
traceback."""


class UserError(ValueError):
  """Something the user asked for or gave cannot be done; the message says what would do."""


class ConfigError(UserError):
  """A model, block, experiment or flag was asked for something it cannot be."""


class CorruptFile(UserError):
  """A file of a workdir cannot be read (cut short, not JSON, missing keys)."""


class WorkdirBusy(UserError):
  """Another live process holds the workdir's lock."""


class TrainingDiverged(UserError):
  """The loss became NaN or infinite (a config to correct: one line on the command line)."""
