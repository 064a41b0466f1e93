"""Entry points: `python -m experiments.<name> --config=... --workdir=...`.

Started that way, the process first re-executes itself once with glibc's malloc on transparent
huge pages where that helps (`bottleneck.util.hugepages`; `BOTTLENECK_HUGEPAGES=0` turns it off)."""

from bottleneck.util import hugepages

hugepages.reexec_entry_point()
