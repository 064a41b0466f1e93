r"""The small Inception on Fashion-MNIST (60,000 / 10,000 real 28x28 images), offline from the
dataset's four IDX files, with and without 1x1 reductions.

  apt-get install dataset-fashion-mnist     # or put the four files in DIR, see below
  python -m experiments.train --config=configs/fashion_inception.py:reduced --workdir=runs/fashion/reduced
  python -m experiments.train --config=configs/fashion_inception.py:naive --workdir=runs/fashion/naive
  python -m experiments.throughput --config=configs/fashion_inception.py:reduced  # its speed here

The files are read from `/usr/share/datasets/fashion-mnist/` (Debian's package), or from
`--config.data.source_dir=DIR` (the four `*-ubyte[.gz]` files from the dataset's page), and
checked against their published checksums (`bottleneck.data.idx`). The network is
`inception_small` (Zhang et al.) at `model_kwargs.width` (default a quarter of the published
widths, `--config.model_kwargs.width=0.5` for more), on the 28x28 images as they are. Recipe:
random shifts of up to 2 pixels and left-right flips (clothes are left-right symmetric), SGD
with momentum 0.9 and a cosine schedule, weight decay 5e-4, batch 128. Accuracies measured
with it are in docs/training.md, against the dataset's published benchmark.
"""

from configs.default import variant_config


def get_config(arg: str = "reduced"):
  c = variant_config(arg)
  c.model = "inception_small"
  c.model_kwargs.width = 0.25
  c.model_kwargs.in_channels = 1
  c.dataset = "fashion_mnist"
  c.image_size = 28
  c.data.crop_padding = 2
  c.data.flip = True
  c.batch_size = c.eval_batch_size = 128
  c.num_epochs = 15.0
  c.optimizer.update(name="sgd", learning_rate=0.05, momentum=0.9, weight_decay=5e-4,
                     schedule="cosine")
  c.log_every_steps = 100
  c.eval_every_steps = 1404  # every 3 epochs (468 steps each), for the curves
  c.checkpoint_every_steps = 468
  return c


def get_sweep(arg: str = ""):
  del arg  # one sweep for every variant
  return [{"reduce": reduce, "seed": seed} for reduce in (True, False) for seed in (0, 1, 2)]
