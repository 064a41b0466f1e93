r"""GoogLeNet (torchvision flavour, batch norm) on Imagenette, with and without 1x1 reductions.

  pip install -e '.[catalog]'   # TFDS needs TensorFlow to download and decode Imagenette
  python -m experiments.train --config=configs/imagenette_googlenet.py:reduced --workdir=runs/imagenette/reduced
  python -m experiments.train --config=configs/imagenette_googlenet.py:naive --workdir=runs/imagenette/naive

Imagenette is a 10-class subset of ImageNet (TFDS `imagenette/160px-v2`, about 100 MB).
Images are resized (shorter side 128, centre crop) and trained with shifts and flips. The naive
GoogLeNet has 70M parameters and 6x the multiply-adds at this size: expect it to be slow on a
CPU; this config is meant for a GPU or TPU.
"""

from configs.default import variant_config


def get_config(arg: str = "reduced"):
  c = variant_config(arg)
  c.model = "googlenet_bn"
  c.dataset = "imagenette/160px-v2"
  c.eval_split = "validation"
  c.image_size = 128
  c.data.update(resize="resize", crop_padding=8, flip=True)
  c.batch_size = c.eval_batch_size = 64
  c.num_epochs = 40.0
  c.optimizer.update(name="sgd", learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=5e-5,
                     schedule="cosine", warmup_epochs=2.0)
  c.log_every_steps = 50
  c.eval_every_steps = 740  # about five epochs
  c.checkpoint_every_steps = 500
  return c
