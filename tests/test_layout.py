"""The library's folders and the one-way rule between them (docs/layout.md), read from the
source: every import, those inside functions included, and every module a call loads by name
(`importlib.import_module`, `mock.patch`)."""

import ast
import os
import re
import sys

from tests import ROOT

# Lower layers first; a module imports from its own folder and from lower layers only (folders
# on one layer do not import each other). The package's face (bottleneck/__init__.py) is below
# everything.
LAYERS = (("util",), ("nn", "data"), ("measure",), ("train",), ("analysis",), ("studies",))
LIBRARY = os.path.join(ROOT, "bottleneck")
# Calls that import the module their first argument names.
LOADERS = ("import_module", "__import__", "run_module", "patch")
NAMED = re.compile(r"^(bottleneck|configs|experiments)(\.\w+)*$")


def _layer(folder: str) -> int:
  return next(i for i, names in enumerate(LAYERS) if folder in names)


def _modules() -> dict[str, str]:
  """{dotted module name: path} of every module of the library."""
  out = {}
  for dirpath, dirnames, files in os.walk(LIBRARY):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
  return out


def _imports(path: str) -> set[str]:
  """The modules a file imports or names as a string: "bottleneck.x.y" for `from bottleneck.x
  import y` (a module or a name in it: the caller resolves)."""
  tree = ast.parse(open(path, encoding="utf-8").read(), path)
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
      called = getattr(node.func, "attr", getattr(node.func, "id", ""))
      value = node.args[0].value
      if called in LOADERS and isinstance(value, str) and NAMED.match(value):
        out.add(value)
  return out


def _graph() -> dict[str, set[str]]:
  """{module: the library's modules it imports}."""
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    targets = set()
    for imported in _imports(path):
      while imported and imported not in modules:  # a name inside a module: its module
        imported = imported.rpartition(".")[0]
      if imported and imported != name:
        targets.add(imported)
    graph[name] = targets
  return graph


def test_every_module_lives_in_a_folder_of_the_rule():
  for name, path in _modules().items():
    if name == "bottleneck":
      continue
    folder = name.split(".")[1]
    assert os.path.isdir(os.path.join(LIBRARY, folder)), f"{path}: not in a folder"
    assert any(folder in names for names in LAYERS), f"{path}: folder {folder} has no layer"


def test_imports_run_down_the_layers_only():
  wrong = []
  for name, targets in _graph().items():
    if name == "bottleneck":
      continue
    mine = name.split(".")[1]
    for target in targets:
      if target == "bottleneck":
        continue
      theirs = target.split(".")[1]
      if theirs != mine and _layer(theirs) >= _layer(mine):
        wrong.append(f"{name} -> {target}")
  assert not wrong, "imports against the layers (docs/layout.md):\n" + "\n".join(sorted(wrong))


def test_the_library_imports_no_config_or_entry_point():
  named = {
      name: sorted(i for i in _imports(path) if i.split(".")[0] in ("configs", "experiments"))
      for name, path in _modules().items()
  }
  assert not {k: v for k, v in named.items() if v}


def test_no_module_imports_itself_back_through_others():
  graph, done, path = _graph(), set(), []

  def visit(node):
    if node in path:
      raise AssertionError("import cycle: " + " -> ".join(path[path.index(node):] + [node]))
    if node in done:
      return
    path.append(node)
    for target in sorted(graph[node]):
      visit(target)
    path.pop()
    done.add(node)

  for node in sorted(graph):
    visit(node)


def test_the_rule_catches_an_import_against_it(tmp_path, monkeypatch):
  """The reader sees a function's import and a module named in a string."""
  lib = tmp_path / "bottleneck"
  for folder in ("util", "train"):
    (lib / folder).mkdir(parents=True)
    (lib / folder / "__init__.py").write_text("")
  (lib / "__init__.py").write_text("")
  (lib / "train" / "loop.py").write_text("")
  (lib / "util" / "cli.py").write_text("def f():\n  from bottleneck.train import loop\n\n"
                                       "NAME = importlib.import_module('configs.default')\n")
  monkeypatch.setattr(sys.modules[__name__], "LIBRARY", str(lib))
  monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
  assert "bottleneck.train.loop" in _graph()["bottleneck.util.cli"]
  assert "configs.default" in _imports(str(lib / "util" / "cli.py"))


def _section(text: str, start: str, end: str) -> str:
  return text[text.index(start):text.index(end, text.index(start))]


def test_the_layout_page_names_every_module_and_no_other():
  text = open(os.path.join(ROOT, "docs", "layout.md"), encoding="utf-8").read()
  folders = [names for layer in LAYERS for names in layer]
  for folder in folders:
    heading = f"### `{folder}/`"
    part = text[text.index(heading):].split("\n### ")[0]
    named = set(re.findall(r"`(\w+\.py)`", part))
    there = {
        f for f in os.listdir(os.path.join(LIBRARY, folder))
        if f.endswith(".py") and f != "__init__.py"
    }
    assert named == there, f"docs/layout.md, {folder}/: lacks {there - named}, has {named - there}"


def test_the_readme_names_every_folder_and_entry_point():
  text = _section(
      open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(), "## Layout",
      "Everything is NHWC")
  for folder in (names for layer in LAYERS for names in layer):
    assert f"`{folder}/`" in text, f"README's layout lacks {folder}/"
  entry_points = {
      f[:-3]
      for f in os.listdir(os.path.join(ROOT, "experiments"))
      if f.endswith(".py") and f != "__init__.py"
  }
  listed = _section(text, "- `experiments/`", "- `tests/`")
  assert entry_points == set(re.findall(r"`(\w+)`", listed)) - {"experiments"}


def test_functions_stay_short_and_constructors_narrow():
  """At most 80 lines a function and 10 arguments a constructor (a dataclass's fields
  included); the training program (`loop.train`) may be longer, as it reads top to bottom."""
  long = []
  for name, path in _modules().items():
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
      if isinstance(node, ast.ClassDef) and any(
          "dataclass" in ast.unparse(d) for d in node.decorator_list):
        fields = [f for f in node.body if isinstance(f, ast.AnnAssign)]  # the constructor's
        if len(fields) > 10:
          long.append(f"{path}:{node.lineno} {node.name}: a dataclass of {len(fields)} fields")
      if not isinstance(node, ast.FunctionDef):
        continue
      lines = node.end_lineno - node.lineno + 1
      a = node.args
      count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - (a.args[:1] != []
                                                                      and a.args[0].arg == "self")
      if (lines > 80 and (name, node.name) != ("bottleneck.train.loop", "train")) or \
          (node.name == "__init__" and count > 10):
        long.append(f"{path}:{node.lineno} {node.name}: {lines} lines, {count} arguments")
  assert not long, "\n".join(long)
