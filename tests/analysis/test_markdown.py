"""`bottleneck.analysis.markdown`: the header, the reuse of computed JSON, sections."""

import os
import re
import shlex

import pytest

from bottleneck.analysis import markdown
from bottleneck.util import workdir as wd
from bottleneck.util.errors import ConfigError
from tests import ODD


def test_the_header_says_how_when_and_where():
  made_by = markdown.command("experiments.report", f"--workdir=/tmp/{ODD}")
  head = markdown.header("A title", made_by, start=0.0, counts="; 3 runs", data="digits.")
  text = "\n".join(head)
  assert head[0] == "# A title"
  command = re.search(
      r"Made by `([^`]+)` on \d{4}-\d\d-\d\d \d\d:\d\d, in \d+ s "
      r"\(finished work reused\); 3 runs\.", text).group(1)
  assert shlex.split(command) == ["python", "-m", "experiments.report", f"--workdir=/tmp/{ODD}"]
  assert re.search(r"^Machine: .*jax \S+, flax \S+", text, re.M)
  assert "Data: digits." in head
  assert not any(line.startswith("Data:") for line in markdown.header("t", "c"))


def test_cached_json_reuses_only_what_matches_its_settings(tmp_path):
  work, calls = str(tmp_path), []

  def compute(value):
    return lambda: calls.append(value) or {"rows": [value]}

  first = markdown.cached_json(work, "b.json", compute(1), settings={"ratios": (0.5, 1)})
  assert first == {"rows": [1], "settings": {"ratios": [0.5, 1]}}  # as JSON reads it back
  assert wd.read_json(str(tmp_path / "b.json")) == first
  again = markdown.cached_json(work, "b.json", compute(2), settings={"ratios": [0.5, 1]})
  assert again == first and calls == [1]  # reused
  # Other settings (an edited config): set aside, computed again.
  changed = markdown.cached_json(work, "b.json", compute(3), settings={"ratios": [1]})
  assert changed["rows"] == [3] and calls == [1, 3]
  assert len(os.listdir(tmp_path / wd.SET_ASIDE)) == 1
  # Not valid (a failed case), or cut short by a crash: computed again.
  markdown.cached_json(work, "b.json", compute(4), settings={"ratios": [1]},
                       valid=lambda d: 4 in d["rows"])
  (tmp_path / "b.json").write_text('{"rows": [')
  markdown.cached_json(work, "b.json", compute(5), settings={"ratios": [1]})
  assert calls == [1, 3, 4, 5] and len(os.listdir(tmp_path / wd.SET_ASIDE)) == 3


def test_refuse_changed_names_what_changed_unless_asked_to_rerun(tmp_path):
  work = str(tmp_path)
  markdown.refuse_changed(work, "b.json", {"repeats": 3}, False, "x.py")  # nothing kept yet
  wd.write_json(str(tmp_path / "b.json"), {"rows": [], "settings": {"repeats": 3}})
  markdown.refuse_changed(work, "b.json", {"repeats": 3}, False, "x.py")  # the same
  with pytest.raises(
      ConfigError, match=r"b.json was measured with other settings than x.py "
      r"has now \(repeats 3 -> 7; batch 'unrecorded' -> 8\).*--rerun_changed"):
    markdown.refuse_changed(work, "b.json", {"repeats": 7, "batch": 8}, False, "x.py")
  markdown.refuse_changed(work, "b.json", {"repeats": 7}, True, "x.py")
  assert not os.path.exists(tmp_path / "b.json")  # set aside, to be measured again
  assert len(os.listdir(tmp_path / wd.SET_ASIDE)) == 1


def test_render_lists_the_answers_then_the_sections():
  text = markdown.render(["# T", ""], [
      markdown.Section("First?", ["body one"], answer="yes."),
      markdown.Section("Plain", ["body two", ""]),
      markdown.Section("Second?", ["body three"], answer="no.")
  ])
  assert text == ("# T\n\n## Answers\n\n1. **First?** yes.\n2. **Second?** no.\n\n"
                  "## First?\n\nbody one\n\n## Plain\n\nbody two\n\n## Second?\n\nbody three\n")
  assert "Answers" not in markdown.render([], [markdown.Section("Plain", ["x"])])
