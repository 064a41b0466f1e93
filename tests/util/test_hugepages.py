"""Malloc on transparent huge pages for the entry points: when it is wanted, how the environment
is changed, and the re-execution of `python -m experiments.<name>`."""

import os
import subprocess
import sys

import pytest

from bottleneck.util import hugepages
from tests import ROOT

NEW_GLIBC = (2, 36)


def test_thp_mode_is_read_from_the_kernels_file(tmp_path):
  path = tmp_path / "enabled"
  path.write_text("always [madvise] never\n")
  assert hugepages.thp_mode(str(path)) == "madvise"
  path.write_text("[always] madvise never\n")
  assert hugepages.thp_mode(str(path)) == "always"
  path.write_text("garbage")
  assert hugepages.thp_mode(str(path)) is None
  assert hugepages.thp_mode(str(tmp_path / "absent")) is None


@pytest.mark.parametrize("environ, mode, glibc, expected", [
    ({}, "madvise", NEW_GLIBC, None),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", NEW_GLIBC, None),
    ({"BOTTLENECK_HUGEPAGES": "0"}, "madvise", NEW_GLIBC, "off (BOTTLENECK_HUGEPAGES=0)"),
    ({"BOTTLENECK_HUGEPAGES": "off"}, "madvise", NEW_GLIBC, "off (BOTTLENECK_HUGEPAGES=off)"),
    ({"BOTTLENECK_HUGEPAGES": "1"}, "madvise", NEW_GLIBC, None),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"
     }, "madvise", NEW_GLIBC, "as set (GLIBC_TUNABLES glibc.malloc.hugetlb=0)"),
    ({}, "madvise", (2, 31), "not available (needs glibc >= 2.35)"),
    ({}, "madvise", None, "not available (needs glibc >= 2.35)"),
    ({}, "always", NEW_GLIBC, "not needed (the kernel's THP mode is always)"),
    ({}, None, NEW_GLIBC, "not needed (the kernel's THP mode is unknown)"),
])
def test_when_the_tunable_is_wanted(environ, mode, glibc, expected):
  assert hugepages.wanted(environ, mode=mode, glibc=glibc) == expected


def test_the_tunable_joins_and_leaves_the_others():
  env = hugepages.with_tunable({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/h"})
  assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "HOME": "/h"}
  assert hugepages.tunable_value(env) == "1"
  back = hugepages.without_tunable(env)
  assert back == {
      "GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/h", "BOTTLENECK_HUGEPAGES": "0"
  }
  assert hugepages.without_tunable(hugepages.with_tunable({})) == {"BOTTLENECK_HUGEPAGES": "0"}
  assert hugepages.tunable_value({}) is None
  assert hugepages.with_tunable({"GLIBC_TUNABLES": "a=1::"
                                })["GLIBC_TUNABLES"] == ("a=1:glibc.malloc.hugetlb=1")
  assert "on (glibc.malloc.hugetlb=1)" in hugepages.state(env)
  assert "off (BOTTLENECK_HUGEPAGES=0)" in hugepages.state({"BOTTLENECK_HUGEPAGES": "0"})


# The child is the program `python -m experiments.X` would re-execute into; it prints the
# environment it got. While Python imports the package for -m, sys.argv[0] is "-m".
_ENTRY = """
import sys
sys.argv = ["-m"]
sys.orig_argv = [sys.executable, "-c", "import os; print('re-executed', os.environ.get("
                 "'GLIBC_TUNABLES'))"]
import experiments
print("not re-executed")
"""


@pytest.mark.parametrize(
    "extra", [{}, {"BOTTLENECK_HUGEPAGES": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}])
def test_an_entry_point_reexecutes_itself_once_when_wanted(extra):
  environ = {
      k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "BOTTLENECK_HUGEPAGES")
  }
  environ.update(extra)
  out = subprocess.run([sys.executable, "-c", _ENTRY], env=environ, cwd=ROOT, text=True,
                       capture_output=True, timeout=60, check=True).stdout.strip()
  why_not = hugepages.wanted(environ, mode=hugepages.thp_mode(), glibc=hugepages.glibc_version())
  if why_not is None:  # on this machine (Linux, glibc >= 2.35, THP madvise)
    assert out == "re-executed " + hugepages.with_tunable(environ)["GLIBC_TUNABLES"]
  else:
    assert out == "not re-executed", why_not


def test_an_opt_out_that_is_neither_on_nor_off_is_refused():
  """BOTTLENECK_HUGEPAGES=garbage was taken as "on" in silence."""
  with pytest.raises(
      ValueError, match=r"BOTTLENECK_HUGEPAGES='garbage' is invalid; valid: 0, "
      r"false, no, off \(malloc's 4 KB pages\) or 1, true, yes, on"):
    hugepages.wanted({"BOTTLENECK_HUGEPAGES": "garbage"}, mode="madvise", glibc=NEW_GLIBC)
  assert "BOTTLENECK_HUGEPAGES='x' is invalid" in hugepages.state({"BOTTLENECK_HUGEPAGES": "x"})
  environ = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  proc = subprocess.run([sys.executable, "-c", _ENTRY],
                        env={**environ, "BOTTLENECK_HUGEPAGES": "garbage"}, cwd=ROOT, text=True,
                        capture_output=True, timeout=60)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.splitlines() == [
      "error: BOTTLENECK_HUGEPAGES='garbage' is invalid; valid: 0, false, no, off (malloc's 4 KB "
      "pages) or 1, true, yes, on (huge pages where they help, the default)."
  ]


def test_an_import_from_elsewhere_does_not_reexecute():
  out = subprocess.run([sys.executable, "-c", "import experiments; print('imported')"],
                       env={k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}, cwd=ROOT,
                       text=True, capture_output=True, timeout=60, check=True)
  assert out.stdout.strip() == "imported"
