r"""Memory and the roofline: why time does (or does not) follow multiply-adds.

  python -m experiments.roofline --config=configs/roofline.py:smoke     # about a minute
  python -m experiments.roofline --config=configs/roofline.py --out=runs/roofline
  python -m experiments.roofline --config=configs/roofline.py:families --out=runs/roofline_families

Measures this device's matmul peak and memory bandwidth, then times (forward, and
forward+backward) Inception blocks naive and reduced, each conv of (3a) alone and ShuffleNetV2's
fragmentation cases, places each on the roofline, and compares a training step's memory naive
against reduced (analytic and XLA's compiled figure; the largest batch within `budget_gb`).
Writes roofline.json, ROOFLINE.md and roofline.png to --out. docs/memory.md explains it.
`families`: the same for the other 1x1 families' blocks (ResNet-50's bottlenecks, SqueezeNet's
fire modules, MobileNetV2's inverted residuals, NiN's mlpconvs) and their networks' training
memory (resnet50, squeezenet1_0 and mobilenet_v2 at 224, nin at 32).
"""

import ml_collections

VARIANTS = ("default", "smoke", "families")


def get_config(arg: str = "default"):
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r}; valid: {', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  # Blocks timed naive and reduced (`experiments.benchmark` case names), on the roofline.
  c.blocks = ("inception_3a", "inception_4a", "inception_4e", "inception_5b", "v3_block_a",
              "v3_block_b", "v3_block_c", "small_inception")
  c.conv_blocks = ("inception_3a",)  # each conv of these blocks timed alone
  c.fragments = (1, 2, 4)  # one 1x1 conv, or the same FLOPs as 2 and 4 parallel ones
  c.fragment_shape = (28, 128, 10)  # input side, channels, blocks in a row
  c.batch = 32
  c.bandwidth_elements = 2**27  # per array (512 MiB in float32): beyond the caches
  c.dtype = "float32"
  c.warmup = 1
  c.repeats = 5
  # Training memory, naive against reduced: (model, image size) at `memory_batch`.
  c.memory_models = (("googlenet", 224), ("inception_v3", 299))
  c.memory_batch = 32
  c.budget_gb = 16.0
  c.memory_xla = True  # also XLA's compiled figure (compiles two training steps per model)
  if arg == "families":
    c.blocks = ("resnet_layer1", "resnet_layer3", "fire3", "fire9", "mobilenet_block3",
                "mobilenet_block13", "nin_mlpconv1", "nin_mlpconv2")
    c.conv_blocks = ()
    c.fragments = ()
    c.memory_models = (("resnet50", 224), ("squeezenet1_0", 224), ("mobilenet_v2", 224), ("nin",
                                                                                          32))
  if arg == "smoke":
    c.blocks = ("small_inception",)
    c.conv_blocks = ()
    c.fragments = (1, 2)
    c.batch = 4
    c.bandwidth_elements = 2**24
    c.repeats = 2
    c.memory_models = (("inception_small", 28),)
    c.memory_batch = 8
    c.budget_gb = 1.0
  return c
