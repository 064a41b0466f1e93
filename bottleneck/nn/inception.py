"""The Inception networks: GoogLeNet (paper and batch-norm flavours), Inception-v3, Zhang et
al.'s small Inception. Each is a flat sequence of named stages so that complexity is reported per
stage, with the names the papers use (`inception_3a` ... `inception_5b`, `mixed_5b` ...).

Widths and conventions: `docs/architectures.md` and the docstrings below.
"""

from __future__ import annotations

import dataclasses

from flax import nnx

from bottleneck.nn import blocks
from bottleneck.nn.blocks import ConvStyle, Reduction
from bottleneck.nn.layers import AvgPool, ClassifierHead, LocalResponseNorm
from bottleneck.nn.network import Network, Widths
from bottleneck.util import errors, validation

# GoogLeNet Table 1: name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_TABLE1 = (
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    ("pool3", None),
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    ("pool4", None),
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
)

# Zhang et al. (2017) small Inception: ("I", c1, c3) or ("D", c3).
SMALL_INCEPTION_LAYOUT = (
    ("I", 32, 32),
    ("I", 32, 48),
    ("D", 80),
    ("I", 112, 48),
    ("I", 96, 64),
    ("I", 80, 80),
    ("I", 48, 96),
    ("D", 96),
    ("I", 176, 160),
    ("I", 176, 160),
)


@dataclasses.dataclass(frozen=True)
class GoogLeNetGeometry:
  """What tells the released GoogLeNets apart, beyond their conv style: Caffe's
  `bvlc_googlenet` (the default) has local response normalization after conv1 and conv2, a
  5x5 conv in the "5x5" branch and a 3x3/2 max pool after (4e); torchvision's `googlenet`
  (`TORCHVISION`) has no LRN, a 3x3 conv in that branch and a 2x2/2 pool."""
  lrn: bool = True
  branch5_kernel: int = 5
  pool4_window: int = 3

  def __post_init__(self):
    validation.choice(self.branch5_kernel, "branch5_kernel", (3, 5), "GoogLeNet")
    validation.choice(self.pool4_window, "pool4_window", (2, 3), "GoogLeNet")


CAFFE = GoogLeNetGeometry()
TORCHVISION = GoogLeNetGeometry(lrn=False, branch5_kernel=3, pool4_window=2)


class GoogLeNet(Network):
  """GoogLeNet (Szegedy et al. 2014, Table 1) with its `Reduction` switching every Inception block.

  The stem (conv 7x7/2, max pool, conv 1x1 64 + 3x3 192, max pool) is the same in both variants.
  The geometry is that of the released networks, Caffe's `bvlc_googlenet` and torchvision's
  `googlenet`: conv1 pads 3 pixels on every side (XLA's SAME would pad 2 before and 3 after,
  shifting every window by a pixel), the other convs k // 2, and the stride-2 max pools take
  no padding and round their output size up (ceil mode). From 224 that is the paper's
  112/56/28/14/7 grid. The head is a global average pool (the paper's 7x7 average pool at 224),
  dropout and a linear layer; auxiliary classifiers are not built.

  Args:
    style, geometry: Caffe's (conv bias, no batch norm; `CAFFE`: LRN, 5x5, a 3x3/2 pool after
      4e) or torchvision's (batch norm, no conv bias; `TORCHVISION`: no LRN, 3x3 in the "5x5"
      branch, a 2x2/2 pool after 4e) conventions: registry names `googlenet` and
      `googlenet_bn`.
    width: multiplies every width of the stem and of Table 1 (rounded, at least 1), for
      comparisons at equal compute (`bottleneck.measure.complexity.match_width`).
    width_extra: one channel more for the first this-many of those widths (`Widths`).
  """

  def __init__(self, *, num_classes: int = 1000, image_size: int = 224,
               reduction: Reduction = Reduction(), style: ConvStyle = ConvStyle(),
               geometry: GoogLeNetGeometry = CAFFE, dropout: float = 0.4, width: float = 1.0,
               width_extra: int = 0, rngs: nnx.Rngs, name: str = "googlenet"):
    scale = Widths(width, width_extra, name)
    pools = {
        p: style.pool(geometry.pool4_window if p == "pool4" else 3, 2, "VALID", ceil_mode=True)
        for p in ("pool1", "pool2", "pool3", "pool4")
    }
    # The smallest input whose every pool still has a window to take.
    self._init_common(
        name, num_classes=num_classes, reduction=reduction, image_size=image_size,
        min_image_size=next(s for s in range(1, 1024) if _side_after(s, pools.values())))
    dtype, param_dtype = style.dtype, style.param_dtype
    c1, c2 = scale(64), scale(192)
    self._add("conv1", style.unit(3, c1, 7, strides=2, padding=3, rngs=rngs, name="conv1"))
    self._add("pool1", pools["pool1"])
    if geometry.lrn:  # Caffe's LRN: k = 1
      self._add("lrn1", LocalResponseNorm(k=1.0))
    self._add(
        "conv2",
        nnx.Sequential(style.unit(c1, c1, 1, rngs=rngs, name="conv2_reduce"),
                       style.unit(c1, c2, 3, rngs=rngs, name="conv2")))
    if geometry.lrn:
      self._add("lrn2", LocalResponseNorm(k=1.0))
    self._add("pool2", pools["pool2"])
    c = c2
    for name_, *widths in GOOGLENET_TABLE1:
      if widths == [None]:
        self._add(name_, pools[name_])
        continue
      block = self._add(
          name_,
          blocks.GoogLeNetInception(c, *map(scale, widths), reduction=reduction, style=style,
                                    branch5_kernel=geometry.branch5_kernel, rngs=rngs, name=name_))
      c = block.out_features
    self.width_bases = scale.check()
    self._add(
        "head",
        ClassifierHead(c, num_classes, dropout=dropout, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs))
    self._seal()


def _side_after(side: int, pools) -> int:
  """The map side after GoogLeNet's conv1 (7x7/2, pad 3) and its stride-2 `pools`."""
  side = (side + 2 * 3 - 7) // 2 + 1
  for pool in pools:
    side = pool.output_size(side) if side > 0 else 0
  return side


# Inception-v3's conv units as Keras builds them: no bias, batch norm without a learned scale,
# padded average pools divided by their real taps.
KERAS_V3_STYLE = ConvStyle(use_bias=False, batch_norm=True, bn_use_scale=False,
                           avg_pool_count_pad=False)


class InceptionV3(Network):
  """Inception-v3 (Szegedy et al. 2015) as in Keras / torchvision, with its `Reduction` switching
  every block. Every conv is conv (no bias) -> batch norm -> ReLU.

  Args:
    style: `KERAS_V3_STYLE` (as Keras: batch norm without scale, the blocks' padded 3x3
      average pools divided by their real taps); torchvision's batch norm learns a scale and
      its average pools count the padding (`bn_use_scale=True, avg_pool_count_pad=True`).
    aux_logits: build the auxiliary classifier on the last 17x17 map (torchvision's
      InceptionAux); `model(x, return_aux=True)` then returns (logits, aux_logits). It needs
      the full 299x299 input.
  """

  def __init__(self, *, num_classes: int = 1000, image_size: int = 299,
               reduction: Reduction = Reduction(), style: ConvStyle = KERAS_V3_STYLE,
               aux_logits: bool = False, dropout: float = 0.5, rngs: nnx.Rngs,
               name: str = "inception_v3"):
    # 75 is the smallest input whose last grid reduction still has a 3x3 map to read (Keras's
    # minimum too); the auxiliary head's 5x5/3 pool then 5x5 VALID conv needs a 17x17 map.
    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=299 if aux_logits else 75)
    dtype, param_dtype = style.dtype, style.param_dtype
    kw = dict(reduction=reduction, style=style, rngs=rngs)
    unit = lambda cin, cout, k, s=1, p="VALID", name="": style.unit(cin, cout, k, strides=s, padding
                                                                    =p, rngs=rngs, name=name)
    self._add(
        "stem",
        nnx.Sequential(unit(3, 32, 3, 2, name="stem_1a"), unit(32, 32, 3, name="stem_2a"),
                       unit(32, 64, 3, p="SAME", name="stem_2b"), style.pool(3, 2, "VALID"),
                       unit(64, 80, 1, name="stem_3b"), unit(80, 192, 3, name="stem_4a"),
                       style.pool(3, 2, "VALID")))
    c = 192
    for name_, pool in (("mixed_5b", 32), ("mixed_5c", 64), ("mixed_5d", 64)):
      c = self._add(name_, blocks.InceptionV3A(c, pool, name=name_, **kw)).out_features
    c = self._add("mixed_6a", blocks.InceptionV3ReductionA(c, name="mixed_6a", **kw)).out_features
    for name_, c7 in (("mixed_6b", 128), ("mixed_6c", 160), ("mixed_6d", 160), ("mixed_6e", 192)):
      c = self._add(name_, blocks.InceptionV3B(c, c7, name=name_, **kw)).out_features
    self.aux = nnx.data(None if not aux_logits else nnx.Sequential(
        AvgPool(5, 3, "VALID"), unit(c, 128, 1, name="aux_1"), unit(128, 768, 5, name="aux_2"),
        ClassifierHead(768, num_classes, rngs=rngs, dtype=dtype, param_dtype=param_dtype)))
    c = self._add("mixed_7a", blocks.InceptionV3ReductionB(c, name="mixed_7a", **kw)).out_features
    for name_ in ("mixed_7b", "mixed_7c"):
      c = self._add(name_, blocks.InceptionV3C(c, name=name_, **kw)).out_features
    self._add(
        "head",
        ClassifierHead(c, num_classes, dropout=dropout, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs))
    self._seal()

  def side_heads(self):
    return [] if self.aux is None else [("mixed_6e", "aux_head", self.aux)]

  def __call__(self, x, return_aux: bool = False):
    if not return_aux:
      return super().__call__(x)
    if self.aux is None:
      raise errors.ConfigError(f"{self.name}: return_aux=True needs aux_logits=True.")
    self.check_input(x.shape)
    aux = None
    for name, stage in self.named_stages():
      x = stage(x)
      if name == "mixed_6e":
        aux = self.aux(x)
    return x, aux


class InceptionSmall(Network):
  """Zhang et al. (2017) small Inception for 28x28 CIFAR-10 crops. Every conv is
  conv (with bias) -> batch norm -> ReLU, SAME padding.

  The naive variant (`Reduction(enabled=False)`, the default) is the paper's network; the
  reduced one puts a 1x1 conv of `ratio * in_features` channels before each 3x3 of the
  Inception and downsample modules (not before the stem). `width` multiplies every published
  width; `width_extra` widens the first this-many by one channel (`Widths`).
  """

  def __init__(self, *, num_classes: int = 10, image_size: int = 28, in_channels: int = 3,
               width: float = 1.0, width_extra: int = 0,
               reduction: Reduction = Reduction(enabled=False, ratio=0.5),
               style: ConvStyle = ConvStyle(use_bias=True, batch_norm=True), rngs: nnx.Rngs,
               name: str = "inception_small"):
    # Two stride-2 downsamples: below 4 pixels the last map is made of padding alone.
    self._init_common(name, num_classes=num_classes, reduction=reduction, image_size=image_size,
                      min_image_size=4)
    dtype, param_dtype = style.dtype, style.param_dtype
    self.in_channels = validation.positive_int(in_channels, "in_channels", name)
    scale = Widths(width, width_extra, name)
    kw = dict(reduction=reduction, style=style, rngs=rngs)
    c = scale(96)
    self._add("stem", style.unit(in_channels, c, 3, rngs=rngs, name="stem"))
    counts = {"I": 0, "D": 0}
    for kind, *widths in SMALL_INCEPTION_LAYOUT:
      counts[kind] += 1
      name_ = f"{'inception' if kind == 'I' else 'downsample'}_{counts[kind]}"
      cls = blocks.SmallInception if kind == "I" else blocks.SmallDownsample
      c = self._add(name_, cls(c, *map(scale, widths), name=name_, **kw)).out_features
    self.width_bases = scale.check()
    self._add("head", ClassifierHead(c, num_classes, dtype=dtype, param_dtype=param_dtype,
                                     rngs=rngs))
    self._seal()
