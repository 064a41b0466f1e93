"""What the ablation studies share: the dataset they run on and their size, from the variant
argument (`--config=configs/ablation_ratio.py:quick`, `:cluttered`, `:cifar10,quick`).

- default: the offline 8x8 digits, `inception_small` at a quarter of its widths, 30 epochs
  (as configs/digits_inception.py), 3 seeds. Every variant there reaches 98-99%: a check of
  the plumbing more than a test of capacity (docs/ablations.md).
- `cluttered`: the same digits, each placed 4 times at random on a 24x24 field among fragments
  of other digits and noise (`digits_cluttered`, offline; as "cluttered MNIST" is built),
  20 epochs: a task on which small networks are capacity-limited.
- `cifar10`: Zhang et al.'s CIFAR-10 recipe (configs/cifar10_inception_small.py: random 28x28
  crops, SGD 0.1 decayed 0.95 per epoch, weight decay 5e-4), at full width. A variant, not a
  single `--config.dataset=cifar10` override: CIFAR-10 also changes the channels, the input
  size, the augmentation and the schedule.
- `fashion`: Fashion-MNIST (real 28x28 images, offline from Debian's `dataset-fashion-mnist`
  or `data.source_dir`; configs/fashion_inception.py's recipe) on a training subset of
  `FASHION_TRAIN` images, 5 seeds per point, scored on the whole 10,000-image test set, so that
  the study fits in 2 hours on a 2-core CPU. The placement study (GoogLeNet) is not run on it.
- `fashion,full` (also `fashion_full`): all of Fashion-MNIST's training images, the last
  `FASHION_VALIDATION` held out as a validation split, `FULL_EPOCHS` epochs, evaluated on the
  validation and test splits after every epoch (accuracy along the run); only the questions
  that the 3-hour budget on a 2-core CPU holds: naive against reduced at the middle budget, and
  ReLU against linear at ratio 1/8 (no naive point in the ratio sweep), 5 seeds each, and the
  A/A check (docs/ablations.md).
- `quick`: a third of the epochs (still 3 seeds: a sweep trains the seeds of a config as one
  program, so they cost little more than one, and a difference needs a spread to be judged);
  with `fashion`, 3 seeds, an eighth of the epochs (half an epoch of the subset) and the first
  `FASHION_QUICK_TEST` test images: a check that the study runs, not a measurement.

Every study holds an A/A check: the reduced network at the middle budget of `iso_macs` is
trained with a second, disjoint set of seeds (`aa_seeds`), and the two sets are compared as
two configs would be: the verdict must be "within noise".

It builds on the experiment recipes and `configs/common.py`, which import nothing heavy, so that
loading a config is instant.
"""

from configs import (
    cifar10_inception_small as cifar10_recipe,
    common,
    digits_inception,
    fashion_inception,
)

OPTIONS = ("quick", "cifar10", "cluttered", "fashion", "full")
DATASETS = ("cifar10", "cluttered", "fashion")  # at most one of them
FASHION_TRAIN = 10_000  # training images of the fashion study (the first of TFDS's order)
FASHION_QUICK_TEST = 2_000  # test images that `fashion,quick` scores (the first 2,000)
FASHION_IMAGES = 60_000  # Fashion-MNIST's training split
FASHION_VALIDATION = 5_000  # `fashion,full`: the last training images, held out for validation
FULL_EPOCHS = 4.0  # `fashion,full`: epochs over the other 55,000
# The config module of each ablation sweep.
SWEEP_MODULES = {
    name: f"configs.{name}" for name in ("iso_macs", "ablation_ratio", "ablation_placement")
}
# iso_macs's budgets of multiply-adds per image. Budgets that both variants meet within 1%.
# inception_small's widths are multiples of 16, so at widths (k + 1/2) / 16 every channel count
# rounds up at once and the cost jumps 5-12%: 0.7M on the digits and 2M on the cluttered digits
# fall in such jumps for the naive network.
BUDGETS = {
    "digits": (0.25e6, 0.67e6, 2e6), "digits_cluttered": (1.95e6, 6e6, 18e6),
    "cifar10": (20e6, 50e6, 120e6), "fashion_mnist": (2e6, 4e6, 8.6e6)
}


def options(arg: str | None) -> set[str]:
  """The options a variant argument sets (`common.parse_arg`); ValueError for an unknown one."""
  chosen = {
      k for k, v in common.parse_arg(arg, "variant", "cifar10,quick", **dict.fromkeys(
          OPTIONS, False)).items() if v
  }
  several = sorted(chosen & set(DATASETS))
  if len(several) > 1:
    raise ValueError(f"variants {' and '.join(several)} are datasets: choose one")
  if "full" in chosen and "fashion" not in chosen:
    raise ValueError("variant full trains on all of Fashion-MNIST: write fashion,full")
  return chosen


def dataset(arg: str | None) -> str:
  chosen = options(arg)
  return ("cifar10" if "cifar10" in chosen else "digits_cluttered"
          if "cluttered" in chosen else "fashion_mnist" if "fashion" in chosen else "digits")


def base(arg: str | None, variant: str = "reduced"):
  """The training config of a study point before its sweep overrides: the dataset's recipe
  (configs/digits_inception.py, fashion_inception.py, cifar10_inception_small.py) with the
  reductions at half the input's channels, sized for a study."""
  chosen = options(arg)
  if "cifar10" in chosen:
    c = cifar10_recipe.get_config(variant)
  elif "full" in chosen:  # every training image but the validation split's, evaluated each epoch
    c = fashion_inception.get_config(variant)
    c.train_split = f"train[:{FASHION_IMAGES - FASHION_VALIDATION}]"
    c.validation_split = f"train[{FASHION_IMAGES - FASHION_VALIDATION}:]"
    c.num_epochs = FULL_EPOCHS
    c.eval_every_steps, c.eval_every_epochs = 0, 1.0
    c.log_every_steps, c.checkpoint_every_steps = 43, 215
  elif "fashion" in chosen:  # on a training subset, a few epochs, no evaluation along the run
    c = fashion_inception.get_config(variant)
    c.train_split = f"train[:{FASHION_TRAIN}]"
    c.num_epochs = 4.0
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 26, 0, 78
  else:
    c = digits_inception.get_config(variant)
    if "cluttered" in chosen:  # four times the examples, each 9 times the pixels
      c.dataset, c.image_size = "digits_cluttered", 24
      c.data.crop_padding = 0  # the digits are already anywhere on the field
      c.num_epochs = 20.0
  c.model_kwargs.reduction_ratio = 0.5
  if "quick" in chosen:
    c.num_epochs /= 8 if "fashion" in chosen else 3
    if "fashion" in chosen:  # scoring 10,000 images was a fixed cost of every run
      c.eval_split = f"test[:{FASHION_QUICK_TEST}]"
    if "full" in chosen:  # two evaluations along the run, of a fifth of the validation images
      c.eval_every_epochs = c.num_epochs / 2
      c.validation_split = f"train[{FASHION_IMAGES - FASHION_VALIDATION // 5}:]"
  return c


def budgets(arg: str | None) -> tuple[float, ...]:
  """The MAC budgets iso_macs runs: `BUDGETS` of the dataset; under `full` its middle one."""
  all_ = BUDGETS[dataset(arg)]
  return all_[1:2] if "full" in options(arg) else all_


def ratios(arg: str | None, every: tuple[float, ...]) -> tuple[float, ...]:
  """The reduction ratios ablation_ratio runs, of `every`: all of them; every other one under
  `quick` or `fashion`; the smallest under `full`."""
  chosen = options(arg)
  return every[:1] if "full" in chosen else every[::2] if {"quick", "fashion"} & chosen else every


def ratio_naive(arg: str | None) -> bool:
  """Whether ablation_ratio trains the naive network (how far the reduction can go): not
  under `full`, whose budget holds only the ReLU question at ratio 1/8."""
  return "full" not in options(arg)


def seeds(arg: str | None) -> tuple[int, ...]:
  """The seeds of every point."""
  chosen = options(arg)  # an unknown variant is refused here too
  return (0, 1, 2, 3, 4) if "fashion" in chosen and "quick" not in chosen else (0, 1, 2)


def aa_seeds(arg: str | None) -> tuple[int, ...]:
  """The A/A check's second set of seeds: as many as `seeds`, none of them."""
  first = seeds(arg)
  return tuple(range(len(first), 2 * len(first)))


def seeds_together(arg: str | None) -> bool:
  """Whether a sweep trains a config's seeds as one vmapped program: on the digits' tiny maps
  it pays (fixed costs shared); on 28x28 Fashion-MNIST the batched convolutions are slower per
  seed on a CPU than separate runs (docs/benchmarks.md)."""
  return "fashion" not in options(arg)


def sweeps(arg: str | None) -> tuple[str, ...]:
  """The ablation sweeps a study runs (configs/<name>.py)."""
  all_ = ("iso_macs", "ablation_ratio", "ablation_placement")
  return all_[:2] if "fashion" in options(arg) else all_


def benchmark_config():
  """The break-even benchmark every study times (configs/benchmark.py:ratio)."""
  from configs import benchmark
  return benchmark.get_config("ratio")
