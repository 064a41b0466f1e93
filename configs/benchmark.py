r"""Benchmarks: naive vs reduced blocks and networks, timed on this device.

  python -m experiments.benchmark --config=configs/benchmark.py:smoke     # about a minute
  python -m experiments.benchmark --config=configs/benchmark.py           # every block
  python -m experiments.benchmark --config=configs/benchmark.py:paths --format=json --out=runs/bench

Variants: `smoke` (block 3a and the small modules, batch 8), `default` (every GoogLeNet block,
the Inception-v3 blocks, the small modules, ResNet-50's blocks, three networks; batches 1, 8,
32; float32), `paths` (each way of computing the ops, `bottleneck.nn.paths`: XLA's defaults,
XLA's own CPU convolution in place of YNNPACK, each path alone on top of that, and all of
them; blocks 3a, v3 B and v3 reduction A at batch 32), `precision` (float32 against bfloat16), `peer` (every case against its PyTorch twin in eager mode, timed in
the same run; needs `pip install -e '.[torch]'`), `peer_compile` (four blocks against PyTorch
eager and `torch.compile`), `ratio` (blocks 3a, 4e and v3 B at batch 32, reduced at ratios
1/8 ... 1 of the input's channels: where the reduced block stops being faster than the naive),
`train_step` (the small Inception of configs/fashion_inception.py at batch 128, width 0.25 on
28x28x1, with "auto", "auto" and the fused batch norm, and XLA's own paths, against PyTorch
eager: docs/benchmarks.md), `resnet`
(ResNet-50's bottleneck blocks with and without their 1x1s, batch 32, against PyTorch eager),
`families` (four GoogLeNet blocks, those, SqueezeNet's fire modules, MobileNetV2's inverted
residuals and NiN's mlpconv blocks, the same way: docs/families.md), `gpu` (for a GPU: six
blocks, the small modules, the training step's network and GoogLeNet at 224x224, batch 128,
against PyTorch eager on the same GPU; .ci/gpu_check runs it with the rest of the GPU figures).
"""

import ml_collections

GOOGLENET_BLOCKS = [
    "inception_3a", "inception_3b", "inception_4a", "inception_4b", "inception_4c", "inception_4d",
    "inception_4e", "inception_5a", "inception_5b"
]
V3_BLOCKS = ["v3_block_a", "v3_reduction_a", "v3_block_b", "v3_reduction_b", "v3_block_c"]
SMALL = ["small_inception", "small_downsample"]
NETWORKS = ["inception_small@28", "googlenet_bn@112", "inception_v3@75"]
# ResNet-50's bottleneck blocks (a later block of each stage), with and without their 1x1s.
RESNET = ["resnet_layer1", "resnet_layer2", "resnet_layer3", "resnet_layer4"]
# SqueezeNet's fire modules with and without their squeeze; MobileNetV2's inverted residuals
# with and without their (expanding) 1x1s.
FIRE = ["fire3", "fire7", "fire9"]
MOBILENET = ["mobilenet_block3", "mobilenet_block6", "mobilenet_block13", "mobilenet_block16"]
# NiN's mlpconv blocks with and without their 1x1s (the per-pixel MLP).
# GoogLeNet's blocks beside them in `families` (docs/families.md's Inception column).
FAMILY_INCEPTION = ["inception_3a", "inception_4a", "inception_4e", "inception_5b"]
NIN = ["nin_mlpconv1", "nin_mlpconv2", "nin_mlpconv3"]
VARIANTS = ("default", "smoke", "paths", "precision", "peer", "peer_compile", "ratio", "train_step",
            "resnet", "families", "gpu")


def get_config(arg: str = "default"):
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r}; valid: {', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  # Tuples, so that the command line can override them: --config.cases='("inception_3a",)'
  c.cases = tuple(GOOGLENET_BLOCKS + V3_BLOCKS + SMALL + RESNET + NETWORKS)
  c.batches = (1, 8, 32)
  c.dtypes = ("float32",)
  # Path sets to time (bottleneck.nn.paths.Paths.parse): "auto", "xla" (every op XLA's own),
  # or a base with overrides, e.g. "xla,max_pool=argmax".
  c.paths = ("auto",)
  c.warmup = 1
  c.repeats = 3
  c.torch_peer = False  # time the PyTorch twin of every case (pip install -e '.[torch]')
  c.torch_compile = False  # and its torch.compile version
  # The reduced variant at each ratio (None: the published widths); naive is timed once.
  c.ratios = (None,)
  if arg == "peer":
    c.batches = (32,)
    c.torch_peer = True
  elif arg == "peer_compile":
    c.cases = ("inception_3a", "inception_4e", "v3_block_b", "small_inception")
    c.batches = (32,)
    c.torch_peer = True
    c.torch_compile = True
  elif arg == "smoke":
    c.cases = ("inception_3a", *SMALL)
    c.batches = (8,)
    c.repeats = 5
  elif arg == "paths":
    c.cases = ("inception_3a", "v3_block_b", "v3_reduction_a")
    c.batches = (32,)
    # XLA's defaults; its own CPU convolution instead of YNNPACK's; each path alone on top of
    # that; every path ("auto" on the CPU).
    eigen = "xla,conv_library=eigen"
    c.paths = ("xla", eigen, f"{eigen},conv_1x1=matmul", f"{eigen},conv_kx1=transposed",
               f"{eigen},conv_strided=im2col", f"{eigen},max_pool=argmax", f"{eigen},norm=fused",
               "auto")
    c.repeats = 5
  elif arg == "ratio":
    c.cases = ("inception_3a", "inception_4e", "v3_block_b")
    c.batches = (32,)
    c.ratios = (0.125, 0.25, 0.5, 0.75, 1.0)
  elif arg == "train_step":
    # The training step of configs/fashion_inception.py (forward+backward, batch norm in train
    # mode, batch 128), ours with "auto" paths, with the fused batch norm on top, and with XLA's
    # own ops, and PyTorch eager's.
    c.cases = ("inception_small@28,width=0.25,in_channels=1",)
    c.batches = (128,)
    c.paths = ("auto", "auto,norm=fused", "xla")
    c.torch_peer = True
    c.repeats = 10
  elif arg in ("resnet", "families"):
    c.cases = tuple(RESNET) if arg == "resnet" else tuple(FAMILY_INCEPTION + RESNET + FIRE
                                                          + MOBILENET + NIN)
    c.batches = (32,)
    c.torch_peer = True
  elif arg == "gpu":
    # Batch 128: at 32 a block's step on a GPU is mostly launch overhead. The network last, so
    # that a run cut short has the blocks.
    c.cases = ("inception_3a", "inception_4e", "inception_5b", "v3_block_a", "v3_block_b",
               "v3_reduction_a", *SMALL, "inception_small@28,width=0.25,in_channels=1",
               "googlenet_bn@224")
    c.batches = (128,)
    c.torch_peer = True
    c.repeats = 10
  elif arg == "precision":
    c.cases = ("inception_3a", "inception_4e", "v3_block_b")
    c.batches = (32,)
    c.dtypes = ("float32", "bfloat16")
  return c
