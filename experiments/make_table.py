r"""Result table of every run below a directory: seeds aggregated, naive/reduced ratios.

  python -m experiments.make_table --workdir=runs/digits_sweep --format=markdown
"""

from absl import flags

from bottleneck import cli, results

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory searched for result.json files.",
                               required=True)
_FORMAT = flags.DEFINE_enum("format", "markdown", results.FORMATS, "Output format.")
_GROUP_BY = flags.DEFINE_list("group_by", None,
                              "Columns whose values define a row (seeds are aggregated). "
                              f"Default: {','.join(results.DEFAULT_GROUP_BY)} and every "
                              f"ablation knob ({', '.join(results.KNOBS)}) that varies.")


def main(argv):
  del argv
  print(results.make_table(_WORKDIR.value, _FORMAT.value, _GROUP_BY.value), end="")


if __name__ == "__main__":
  cli.run(main)
