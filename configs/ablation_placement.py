r"""Which reduction matters? GoogLeNet's module with its 1x1 reductions before the 3x3, before
the 5x5, as the pool projection, each alone, all of them, and none (the naive module).

  python -m experiments.sweep --config=configs/ablation_placement.py --workdir=runs/ablation_placement
  python -m experiments.sweep --config=configs/ablation_placement.py:quick --workdir=runs/ablation_placement_quick
  python -m experiments.make_table --workdir=runs/ablation_placement

The small Inception has reductions before its 3x3s only, so this study uses `googlenet`
(Caffe's geometry: real 5x5 branches) with batch norm instead of LRN, at an eighth of its
widths, on the digits upsampled to 32x32 (GoogLeNet's five stride-2 steps need at least 31)
with a batch-norm momentum of 0.9 (the runs are short), or
at full width on CIFAR-10 at 32x32 (`:cifar10`). Points: places {3x3, 5x5, pool, all} x 3
seeds and the naive network x 3 seeds (`:quick`: a third of the epochs).
"""

from configs import study

PLACES = ("3x3", "5x5", "pool", "3x3,5x5,pool")


def get_config(arg: str = ""):
  c = study.base(arg)
  c.model = "googlenet"
  c.model_kwargs.update(batch_norm=True, use_bias=False, lrn=False, reduction_ratio=None,
                        in_channels=None, width=None if "cifar10" in study.options(arg) else 0.125)
  c.image_size = 32
  if "cifar10" not in study.options(arg):
    # Measured (3 seeds, 10 epochs, all reductions): zero-padded to 32x32, the 8x8 digit is a
    # 2x2 patch after GoogLeNet's stem and training reaches 56-69% (eval 40-63%); upsampled,
    # 95-97%. Flax's batch-norm momentum 0.99 leaves a run of a few hundred steps evaluated
    # with mostly initial statistics (train 98%, eval 31%); 0.9 catches up in tens of steps.
    c.data.resize = "resize"
    c.model_kwargs.bn_momentum = 0.9
  else:
    c.data.random_crop = False
    c.data.crop_padding, c.data.flip = 4, True  # 32x32 inputs: pad-and-crop, flips
  return c


def get_sweep(arg: str = ""):
  seeds = study.seeds(arg)
  return ([{"model_kwargs.reduction_places": p, "seed": s} for p in PLACES for s in seeds]
          + [{"reduce": False, "seed": s} for s in seeds])


# Whether `experiments.sweep` trains a point's seeds as one program: not on Fashion-MNIST.
seeds_together = study.seeds_together
