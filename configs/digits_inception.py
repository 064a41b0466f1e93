r"""Zhang et al.'s small Inception on the offline 8x8 digits, with and without 1x1 reductions.

  python -m experiments.train --config=configs/digits_inception.py:reduced --workdir=runs/digits/reduced
  python -m experiments.train --config=configs/digits_inception.py:naive --workdir=runs/digits/naive

The network is `inception_small` at a quarter of its published widths, on the 8x8 images as
they are (its two stride-2 downsamples leave a 2x2 map), so that each variant trains in well
under two minutes on a 2-core CPU. Variants: `reduced` (a 1x1 of half the input's channels
before each 3x3) and `naive` (the paper's modules).

The sweep (both variants x 3 seeds, and the reduced one with 3 more seeds for the report's A/A
check; `python -m experiments.report` runs it):

  python -m experiments.sweep --config=configs/digits_inception.py --workdir=runs/digits_sweep
"""

from configs.default import variant_config


def get_config(arg: str = "reduced"):
  c = variant_config(arg)
  c.model = "inception_small"
  c.model_kwargs.width = 0.25
  c.model_kwargs.in_channels = 1
  c.dataset = "digits"
  c.image_size = 8
  c.data.crop_padding = 1  # random shifts of up to one pixel
  c.batch_size = 64
  c.eval_batch_size = 64
  c.num_epochs = 30.0
  c.optimizer.learning_rate = 0.05
  c.optimizer.weight_decay = 5e-4
  c.log_every_steps = 21
  c.checkpoint_every_steps = 105
  c.eval_every_steps = 105  # every 5 epochs, for the curves
  return c


# The seeds of the comparison, and a disjoint set for the A/A check (the reduced config
# against itself: its verdict must be "within noise"; `bottleneck.studies.report`).
SEEDS = (0, 1, 2)
AA_SEEDS = (3, 4, 5)


def get_sweep(arg: str = ""):
  del arg  # one sweep for every variant
  return ([{"reduce": reduce, "seed": seed} for reduce in (True, False) for seed in SEEDS]
          + [{"reduce": True, "seed": seed} for seed in AA_SEEDS])
