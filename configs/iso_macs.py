r"""At equal compute, is the reduced network more accurate? Naive and reduced small Inceptions,
each at the width multiplier that costs the same multiply-adds per image (within 1%,
`bottleneck.measure.complexity.match_width`), at three budgets: accuracy against MACs for each family.

  python -m experiments.sweep --config=configs/iso_macs.py --workdir=runs/iso_macs
  python -m experiments.sweep --config=configs/iso_macs.py:quick --workdir=runs/iso_macs_quick
  python -m experiments.make_table --workdir=runs/iso_macs

Budgets on the 8x8 digits: 0.25M, 0.67M and 2M MACs per image (width about 0.12 to 0.42);
on the cluttered digits (`:cluttered`, 24x24): 1.95M, 6M and 18M; on CIFAR-10 (`:cifar10`,
28x28): 20M, 50M and 120M; on Fashion-MNIST (`:fashion`, 28x28): 2M, 4M and 8.6M (the
default width 0.25 costs 8.6M). Each budget x {naive, reduced} x 3 seeds (5 on Fashion-MNIST;
`:quick`: fewer epochs; `:fashion,full`: the middle budget alone, on all the training
images), and the A/A check: the reduced network at the middle budget with
as many other seeds (configs/study.py). The width each point found is in its result.json
(`match`).
"""

from configs import study

BUDGETS = study.BUDGETS


def get_config(arg: str = ""):
  c = study.base(arg)
  c.model_kwargs.width = None  # found from the budget
  c.match_macs = BUDGETS[c.dataset][1]
  return c


def get_sweep(arg: str = ""):
  budgets = study.BUDGETS[study.dataset(arg)]
  chosen = study.budgets(arg)
  # The A/A check: the reduced network at the middle budget again, with other seeds.
  return ([{"match_macs": b, "reduce": r, "seed": s}
           for b in chosen
           for r in (True, False)
           for s in study.seeds(arg)]
          + [{"match_macs": budgets[1], "reduce": True, "seed": s} for s in study.aa_seeds(arg)])


# Whether `experiments.sweep` trains a point's seeds as one program: not on Fashion-MNIST.
seeds_together = study.seeds_together
