r"""Benchmarks: naive vs reduced blocks and networks, timed on this device.

  python -m experiments.benchmark --config=configs/benchmark.py:smoke     # about a minute
  python -m experiments.benchmark --config=configs/benchmark.py           # every block
  python -m experiments.benchmark --config=configs/benchmark.py:conv1x1 --format=json --out=runs/bench

Variants: `smoke` (block 3a and the small modules, batch 8, both 1x1 paths), `default` (every
GoogLeNet block, the Inception-v3 blocks, the small modules, three networks; batches 1, 8, 32;
float32), `conv1x1` (the "1x1 conv as a matmul" path against XLA's conv, blocks 3a and 4e),
`precision` (float32 against bfloat16), `peer` (every GoogLeNet block against the same block in
PyTorch eager, timed in the same run; needs `pip install -e '.[torch]'`).
"""

import ml_collections

GOOGLENET_BLOCKS = ["inception_3a", "inception_3b", "inception_4a", "inception_4b",
                    "inception_4c", "inception_4d", "inception_4e", "inception_5a",
                    "inception_5b"]
V3_BLOCKS = ["v3_block_a", "v3_reduction_a", "v3_block_b", "v3_reduction_b", "v3_block_c"]
SMALL = ["small_inception", "small_downsample"]
NETWORKS = ["inception_small@28", "googlenet_bn@112", "inception_v3@75"]
VARIANTS = ("default", "smoke", "conv1x1", "precision", "peer")


def get_config(arg: str = "default"):
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r}; valid: {', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.cases = GOOGLENET_BLOCKS + V3_BLOCKS + SMALL + NETWORKS
  c.batches = (1, 8, 32)
  c.dtypes = ("float32",)
  c.conv_1x1 = ("xla",)
  c.warmup = 1
  c.repeats = 3
  c.torch_peer = False  # time the PyTorch twin of every GoogLeNet block (pip install -e '.[torch]')
  c.torch_compile = False  # and its torch.compile version
  if arg == "peer":
    c.cases = GOOGLENET_BLOCKS
    c.batches = (8, 32)
    c.torch_peer = True
  elif arg == "smoke":
    c.cases = ["inception_3a"] + SMALL
    c.batches = (8,)
    c.conv_1x1 = ("xla", "matmul")
    c.repeats = 5
  elif arg == "conv1x1":
    c.cases = ["inception_3a", "inception_4e"]
    c.batches = (8, 32)
    c.conv_1x1 = ("xla", "matmul")
    c.repeats = 5
  elif arg == "precision":
    c.cases = ["inception_3a", "inception_4e", "v3_block_b"]
    c.batches = (32,)
    c.dtypes = ("float32", "bfloat16")
  return c
