r"""How far can the reduction go, and does its ReLU help? The small Inception with its 1x1
reductions at ratios 1/8 ... 1 of the input's channels, with and without the ReLU after them,
against the naive network (SqueezeNet's squeeze-ratio ablation; Inception-v3's Fig. 2).

  python -m experiments.sweep --config=configs/ablation_ratio.py --workdir=runs/ablation_ratio
  python -m experiments.sweep --config=configs/ablation_ratio.py:quick --workdir=runs/ablation_ratio_quick
  python -m experiments.sweep --config=configs/ablation_ratio.py:cifar10 --workdir=runs/ablation_ratio_cifar10
  python -m experiments.make_table --workdir=runs/ablation_ratio

Points: ratio {1/8, 1/4, 1/2, 3/4, 1} x activation {relu, linear} x 3 seeds, and the naive
network x 3 seeds (`:quick` and `:fashion`: ratios {1/8, 1/2, 1}; `:quick` with fewer
epochs; `:fashion,full`: ratio 1/8 alone, without the naive network). Datasets, seeds and
sizes: configs/study.py.
"""

from configs import study

RATIOS = (0.125, 0.25, 0.5, 0.75, 1.0)


def get_config(arg: str = ""):
  return study.base(arg)


def get_sweep(arg: str = ""):
  seeds = study.seeds(arg)
  naive = [{"reduce": False, "seed": s} for s in seeds] if study.ratio_naive(arg) else []
  return ([{"model_kwargs.reduction_ratio": r, "model_kwargs.reduction_activation": act, "seed": s}
           for r in study.ratios(arg, RATIOS)
           for act in (True, False)
           for s in seeds] + naive)


# Whether `experiments.sweep` trains a point's seeds as one program: not on Fashion-MNIST.
seeds_together = study.seeds_together
