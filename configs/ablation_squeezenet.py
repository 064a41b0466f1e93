r"""SqueezeNet's design space (Iandola et al. 2016, Fig. 2): how much squeeze, and how much of
the expand should be 3x3? SqueezeNet 1.1 at half its widths on 32x32 images, its squeeze at
ratios 1/8 ... 1 of each module's input (3x3 half the expand, as published), and its expand
1% ... 99% 3x3 (squeeze at half the input, as the paper's Fig. 2b), and without its squeeze.

  python -m experiments.sweep --config=configs/ablation_squeezenet.py --workdir=runs/ablation_squeezenet
  python -m experiments.sweep --config=configs/ablation_squeezenet.py:quick --workdir=runs/ablation_squeezenet_quick
  python -m experiments.make_table --workdir=runs/ablation_squeezenet

As in the paper, the widths are fixed and the cost moves with the knobs (at 32x32: 0.71M
multiply-adds per image at squeeze 1/8, 4.3M at 1, 0.88M at 1% 3x3, 3.6M at 99%; `make_table`
lists each point's), where configs/ablation_families.py compares at equal cost. The paper's
squeeze ratio SR is the squeeze over the module's expand channels; here it is over the
module's input (`Reduction.ratio`), which is the previous module's expand: the same except in
the four modules that widen (fire2, 4, 6, 8), where the input is 1/2 to 3/4 of the expand.
Data, recipe and seeds: configs/study.py's (the digits by default, `:fashion`, `:quick`),
every image resized to 32x32 and every conv with batch norm (configs/ablation_families.py:
without it SqueezeNet's squeeze variants did not learn). Points: ratio {1/8, 1/4, 1/2, 3/4, 1}
at pct3x3 0.5, pct3x3 {0.01, 0.25, 0.75, 0.99} at ratio 1/2, and the network without its
squeeze, each x 3 seeds (5 on Fashion-MNIST; `:quick` and `:fashion`: ratios {1/8, 1/2, 1}
and pct3x3 {0.01, 0.99}).
"""

from configs import ablation_families as families, study

MODEL = "squeezenet1_1"
WIDTH = 0.5  # 0.85M multiply-adds per image at 32x32 as published: the families study's budget
RATIOS = (0.125, 0.25, 0.5, 0.75, 1.0)
PCT3X3 = (0.01, 0.25, 0.75, 0.99)  # with the ratio's 0.5 point: the paper's Fig. 2b


def get_config(arg: str = ""):
  c = families.get_config(arg)
  c.model = MODEL
  c.match_macs = 0.0
  c.model_kwargs.width = WIDTH
  c.model_kwargs.reduction_ratio = 0.5
  c.model_kwargs.pct3x3 = 0.5
  c.model_kwargs.batch_norm, c.model_kwargs.use_bias = True, False
  return c


def get_sweep(arg: str = ""):
  few = {"quick", "fashion"} & study.options(arg)
  ratios = RATIOS[::2] if few else RATIOS
  shares = PCT3X3[::3] if few else PCT3X3
  seeds = study.seeds(arg)
  return ([{"model_kwargs.reduction_ratio": r, "seed": s} for r in ratios for s in seeds]
          + [{"model_kwargs.pct3x3": p, "seed": s} for p in shares for s in seeds]
          + [{"reduce": False, "seed": s} for s in seeds])


# Whether `experiments.sweep` trains a point's seeds as one program: not on Fashion-MNIST.
seeds_together = study.seeds_together
