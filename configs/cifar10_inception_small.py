r"""Zhang et al. (2017)'s small Inception on CIFAR-10, their recipe, with and without reductions.

  pip install -e '.[catalog]'   # TFDS needs TensorFlow to download and decode CIFAR-10
  python -m experiments.train --config=configs/cifar10_inception_small.py:naive --workdir=runs/cifar10/naive
  python -m experiments.train --config=configs/cifar10_inception_small.py:reduced --workdir=runs/cifar10/reduced

Recipe (Zhang et al., appendix): random 28x28 crops of the 32x32 images (the centre at test
time), SGD with momentum 0.9, learning rate 0.1 decayed by 0.95 per epoch, weight decay. The
paper reports 89.05% with crops and weight decay. `naive` is the paper's network; `reduced`
puts a 1x1 of half the input channels before each 3x3. The paper gives no weight-decay value
or epoch count: 5e-4 and 100 epochs here. It downloads CIFAR-10 (about 160 MB) on first use.
"""

from configs.default import variant_config


def get_config(arg: str = "naive"):
  c = variant_config(arg)
  c.model = "inception_small"
  c.dataset = "cifar10"
  c.image_size = 28
  c.data.random_crop = True
  c.batch_size = c.eval_batch_size = 128
  c.num_epochs = 100.0
  c.optimizer.update(name="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                     schedule="exponential", decay_rate=0.95)
  c.log_every_steps = 100
  c.eval_every_steps = 390  # about once per epoch
  c.checkpoint_every_steps = 1000
  return c
