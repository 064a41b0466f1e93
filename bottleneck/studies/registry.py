"""The studies by name: what `experiments.report --study` runs, its help, and the reports the main
report links. A new study is a module of this folder with its questions and sections, its
configs, and its entry here."""

from __future__ import annotations

import dataclasses

from bottleneck.util.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Made:
  """A report a study's command makes: its title, where the command writes it by default, the
  copy docs/ keeps (both relative to the project's root) and the command."""
  title: str
  path: str
  doc: str
  command: str


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: `name` as `--study=name[:variant]` spells it ("" for a study with an entry point of
  its own), its module under bottleneck/studies (`build(workdir, variant, plan, ...)`,
  `parse_study(spec, plan)`), the report it writes, and the runs of it the docs keep."""
  name: str
  module: str
  report: str
  made: tuple[Made, ...]
  examples: tuple[str, ...] = ()  # variants, as the help and the errors show them


STUDIES = (
    Study("ablation", "bottleneck.studies.ablation", "ABLATION.md", (
        Made("The ablation study at equal compute (digits)", "runs/ablation_quick/ABLATION.md",
             "docs/ablation_quick/ABLATION.md",
             "python -m experiments.report --study=ablation:quick --parallel=2"),
        Made(
            "The ablation study on Fashion-MNIST", "runs/ablation_fashion/ABLATION.md",
            "docs/ablation_fashion/ABLATION.md",
            "python -m experiments.report --study=ablation:fashion "
            "--workdir=runs/ablation_fashion"),
        Made(
            "The ablation study on all of Fashion-MNIST, along training",
            "runs/ablation_fashion_full/ABLATION.md", "docs/ablation_fashion_full/ABLATION.md",
            "python -m experiments.report --study=ablation:fashion_full "
            "--workdir=runs/ablation_fashion_full --parallel=2"),
    ), ("quick", "cluttered", "cluttered,quick", "fashion_full")),
    Study("", "bottleneck.measure.roofline", "ROOFLINE.md", (Made(
        "Memory and the roofline", "runs/roofline/ROOFLINE.md", "docs/roofline_cpu/ROOFLINE.md",
        "python -m experiments.roofline --config=configs/roofline.py --out=runs/roofline"),)),
    Study("", "bottleneck.studies.families", "FAMILIES.md", (Made(
        "The 1x1 across families (ResNet, SqueezeNet, MobileNetV2, NiN)", "runs/FAMILIES.md",
        "docs/families.md",
        "python -m experiments.families --benchmark=runs/bench_families/benchmark.json "
        "--sweep=runs/ablation_families --out=runs/FAMILIES.md"),)),
)


def by_name() -> dict[str, Study]:
  """The studies `--study` runs, by name."""
  return {s.name: s for s in STUDIES if s.name}


def find(spec: str) -> Study:
  """The study a `--study` value names (before its ':variant'); ConfigError naming the valid."""
  name = spec.partition(":")[0]
  known = by_name()
  if name not in known:
    valid = "; ".join(f"{s.name} (with a variant: " + ", ".join(f"{s.name}:{v}"
                                                                for v in s.examples) + ", ...)"
                      for s in known.values())
    raise ConfigError(f"unknown study {name!r}; valid: {valid}.")
  return known[name]


def made() -> tuple[Made, ...]:
  """Every report the studies' commands make, in the registry's order."""
  return tuple(m for s in STUDIES for m in s.made)
