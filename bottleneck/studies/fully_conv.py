"""Sliding-window classification in one pass: a classifier made fully convolutional
(`bottleneck.nn.conversions.convolutionalize`) reads an input larger than its training size and
returns a map of class scores.

- A flatten + Dense classifier trained on the digits (configs/digits_fc_head.py) reads a canvas
  holding several test digits; every location equals the classifier on its crop.
- A network whose head averages per-pixel class scores (GoogLeNet, Inception-v3, the ResNets,
  MobileNetV2: global pool and Dense; SqueezeNet and NiN: a 1x1 conv and global pool; e.g.
  weights from experiments.import_weights) reads the two photos scikit-learn ships
  (china.jpg, flower.jpg). Each location is compared with the
  network on its 224x224 crop (they differ where the network pads inside; by how much is
  measured per ring of locations from the map's edge), and the cost of the map in one pass is
  measured against classifying one crop (Caffe's fully convolutional CaffeNet: 64x the outputs
  for about 3x the time).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from bottleneck.data import pipeline
from bottleneck.nn import conversions, fc_head, layers, network
from bottleneck.train import saved_models, steps
from bottleneck.util import validation, workdir as wd
from bottleneck.util.errors import ConfigError


def canvas_slots(size: int, tile: int, stride: int) -> list[tuple[int, int]]:
  """Where a digit may go: offsets that are multiples of `stride` and leave it whole."""
  return [
      (r, c) for r in range(0, size - tile + 1, stride) for c in range(0, size - tile + 1, stride)
  ]


def _grid_step(tile: int, stride: int) -> int:
  """The smallest multiple of `stride` at least `tile`: slots this far apart never overlap."""
  return -(-tile // stride) * stride


def capacity(size: int, tile: int, stride: int) -> int:
  """How many non-overlapping digits a grid of slots `_grid_step` apart holds: the most
  `make_canvas` promises to place."""
  return len(range(0, size - tile + 1, _grid_step(tile, stride)))**2


def make_canvas(split: pipeline.Split, size: int, tile: int, stride: int, num_digits: int,
                seed: int):
  """An size x size uint8 canvas with `num_digits` test images at non-overlapping places
  whose offsets are multiples of `stride` (so a score-map location covers each exactly).
  ConfigError if more digits are asked for than `capacity` allows."""
  most = min(capacity(size, tile, stride), len(split))
  if not 1 <= num_digits <= most:
    raise ConfigError(f"--num_digits={num_digits} is invalid: a {size}x{size} canvas holds 1 to "
                      f"{most} non-overlapping {tile}x{tile} digits; use a larger --image_size "
                      "for more.")
  rng = np.random.default_rng(seed)
  images, labels = split.read(rng.choice(len(split), num_digits, replace=False))
  slots = canvas_slots(size, tile, stride)
  for _ in range(100):  # random places; if they crowd each other out, the grid always fits
    canvas, placed = _place(images, labels, slots, size, tile, rng)
    if len(placed) == num_digits:
      return canvas, placed
  step = _grid_step(tile, stride)
  grid = [(r, c) for r, c in slots if r % step == 0 and c % step == 0]
  return _place(images, labels, grid, size, tile, rng)


def _place(images, labels, slots, size, tile, rng):
  canvas = np.zeros((size, size, images[0].shape[-1]), np.uint8)
  taken = np.zeros((size, size), bool)
  placed = []
  for image, label in zip(images, labels):
    for k in rng.permutation(len(slots)):
      r, c = slots[k]
      if not taken[r:r + tile, c:c + tile].any():
        canvas[r:r + tile, c:c + tile] = image
        taken[r:r + tile, c:c + tile] = True
        placed.append({"label": int(label), "row": int(r), "col": int(c)})
        break
  return canvas, placed


def run(workdir: str, image_size: int | None = None, *, num_digits: int = 4, seed: int = 0,
        out_dir: str | None = None, calibrate_bn: bool = False, repeats: int = 5) -> dict:
  """Loads the model saved in `workdir`, convolutionalizes it, runs it on a canvas of digits
  (flatten + Dense classifiers; `image_size` the canvas side, default 32) or on the photos
  (networks with a pooled head; `image_size` their shorter side, default 320)."""
  validation.positive_int(repeats, "--repeats", "fully_conv")  # 0: a median of no timings
  validation.whole(seed, "--seed", "fully_conv")  # NumPy's generators take no negative seed
  if out_dir is not None:
    wd.ensure_writable(out_dir, "--out_dir")  # before the work, not after it
  _check_size(workdir, image_size)  # before the model is built (seconds for GoogLeNet)
  loaded = saved_models.load(workdir)
  out_dir = out_dir or os.path.join(workdir, "fully_conv")
  if isinstance(loaded.model, fc_head.FlattenHeadClassifier):
    return _run_digits(loaded, 32 if image_size is None else image_size, num_digits, seed, out_dir)
  if isinstance(loaded.model, network.Network) and "head" in loaded.model.stage_names and \
      isinstance(loaded.model.head, (layers.ClassifierHead, layers.ConvClassifier)):
    return run_photos(loaded, 320 if image_size is None else image_size, out_dir,
                      calibrate_bn=calibrate_bn, repeats=repeats)
  raise ConfigError(f"{workdir} holds {loaded.config.model!r}; fully_conv takes a flatten + "
                    "Dense classifier (configs/digits_fc_head.py) or a network whose head "
                    "averages per-pixel class scores: googlenet, googlenet_bn, inception_v3, "
                    "the ResNets, the SqueezeNets, mobilenet_v2, nin "
                    "(experiments.import_weights).")


def _check_size(workdir: str, image_size: int | None) -> None:
  """Refuses an `image_size` under the training size its `config.json` records (a directory
  without a readable one is left to `saved_models.load` to name)."""
  path = os.path.join(workdir, wd.CONFIG)
  if image_size is None or not os.path.isfile(path):
    return
  try:
    size = wd.read_json(path, ("image_size",))["image_size"]
  except wd.CorruptFile:
    return
  if isinstance(size, int) and image_size < size:
    raise ConfigError(f"--image_size={image_size} is too small; the minimum is the training size "
                      f"{size}.")


def _run_digits(loaded, image_size, num_digits, seed, out_dir) -> dict:
  model, config, step = loaded.model, loaded.config, loaded.step
  fully_conv = conversions.convolutionalize(model)
  if image_size < fully_conv.min_image_size:
    raise ConfigError(f"--image_size={image_size} is too small; the minimum is the training "
                      f"size {fully_conv.min_image_size}.")
  d = config.data
  split = pipeline.config_splits(config, (config.eval_split,), in_memory=False)[config.eval_split]
  canvas, placed = make_canvas(split, image_size, model.image_size, fully_conv.stride, num_digits,
                               seed)
  x = pipeline.Preprocess(image_size, model.in_channels, mean=d.mean, std=d.std)([canvas],
                                                                                 train=False)
  scores, diff, checked = conversions.crops_vs_score_map(model, fully_conv, jnp.asarray(x))
  probs = np.asarray(jax.nn.softmax(scores[0], axis=-1))
  for p in placed:  # the location whose window is exactly this digit
    p["predicted"] = int(
        np.argmax(probs[p["row"] // fully_conv.stride, p["col"] // fully_conv.stride]))
  from bottleneck.analysis import plots
  files = plots.heat_maps(canvas, probs, placed, fully_conv.stride, out_dir)
  return {
      "kind": "digits", "checkpoint_step": step, "input_shape": list(x.shape),
      "score_map_shape": list(scores.shape[1:]), "max_abs_diff_vs_crops": diff,
      "max_abs_score": float(jnp.abs(scores).max()), "crops_checked": checked,
      "stride": fully_conv.stride, "digits": placed, "files": files
  }


MAX_PHOTO_SIDE = 1024


def _windows(x: np.ndarray, size: int, stride: int, locations):
  """The size x size windows of one image (HWC) at the given (i, j) map locations."""
  return np.stack(
      [x[i * stride:i * stride + size, j * stride:j * stride + size] for i, j in locations])


def photo_input(image: np.ndarray, side: int, size: int, stride: int) -> np.ndarray:
  """`image` (uint8 HWC) with its shorter side scaled to `side` (bilinear, antialiased), then
  cut at the centre to size + k * stride on each side, so that score-map locations fall on
  whole crops."""
  if side < size:
    raise ConfigError(f"--image_size={side} is too small; the minimum is the training size "
                      f"{size}.")
  if side > MAX_PHOTO_SIDE:
    raise ConfigError(f"--image_size={side} is too large; at most {MAX_PHOTO_SIDE} (the "
                      "photos are 427 pixels high, and larger maps need gigabytes).")
  h, w = image.shape[:2]
  scale = side / min(h, w)
  nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
  image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
  th, tw = (size + (n - size) // stride * stride for n in (nh, nw))
  top, left = (nh - th) // 2, (nw - tw) // 2
  return image[top:top + th, left:left + tw]


def calibrate_batch_norm(model, x: jax.Array) -> None:
  """Sets every batch norm's statistics to those of `x` (training's precise batch norm,
  `steps.precise_batch_norm`, over the one batch `x`), so that random weights give activations
  of unit scale throughout."""
  model.train()
  model_def, state = nnx.split(model)
  stats = jax.jit(functools.partial(steps.batch_norm_stats, model_def, jnp.float32))
  set_stats = functools.partial(steps.set_batch_norm_stats, model_def)
  nnx.update(model, steps.precise_batch_norm(stats, set_stats, state, [{"image": x}]))
  model.eval()


def _by_ring(values: np.ndarray) -> list[dict]:
  """Max and mean of a per-location H' x W' array by ring: 0 the map's edge, 1 the next..."""
  h, w = values.shape
  i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  ring = np.minimum(np.minimum(i, j), np.minimum(h - 1 - i, w - 1 - j))
  return [{
      "ring": int(r), "locations": int(np.sum(ring == r)), "max": float(values[ring == r].max()),
      "mean": float(values[ring == r].mean())
  } for r in range(int(ring.max()) + 1)]


def _photo(model, net, x, score_map, classify, chunk: int, repeats: int) -> tuple[dict, np.ndarray]:
  """One photo's score map against classifying each of its crops (`chunk` at a time), and at
  the training size; the times of the map and of one crop. (Its record, its probabilities.)"""
  from bottleneck.measure import benchmark, complexity
  size = model.image_size
  scores = np.asarray(score_map(net, x))[0]
  h, w = scores.shape[:2]
  locs = [(i, j) for i in range(h) for j in range(w)]
  direct = np.concatenate([
      np.asarray(
          classify(model,
                   jnp.asarray(_windows(np.asarray(x[0]), size, net.stride, locs[k:k + chunk]))))
      for k in range(0, len(locs), chunk)
  ]).reshape(h, w, -1)
  scale = float(np.abs(direct).max())
  rel = np.abs(scores - direct).max(-1) / scale
  agree = np.argmax(scores, -1) == np.argmax(direct, -1)
  centre = (x.shape[1] - size) // 2, (x.shape[2] - size) // 2
  crop = x[:, centre[0]:centre[0] + size, centre[1]:centre[1] + size]
  at_size_logits = np.asarray(classify(model, crop))[0]
  at_size = float(np.abs(np.asarray(score_map(net, crop))[0, 0, 0] - at_size_logits).max())
  t_map = float(np.median(benchmark.time_calls(score_map, (net, x), 2, repeats)))
  t_crop = float(np.median(benchmark.time_calls(classify, (model, crop), 2, repeats)))
  probs = np.asarray(jax.nn.softmax(scores, -1))
  return {
      "input_shape": list(x.shape[1:]),
      "score_map_shape": [h, w, scores.shape[-1]],
      "locations": h * w,
      "at_training_size_max_abs_diff": at_size,
      "at_training_size_max_abs_logit": float(np.abs(at_size_logits).max()),
      "vs_crops_max_rel_diff": float(rel.max()),
      "vs_crops_top1_agreement": float(agree.mean()),
      "vs_crops_by_ring": _by_ring(rel),
      "map_time_s": t_map,
      "crop_time_s": t_crop,
      "time_ratio": t_map / t_crop,
      "map_macs": complexity.module_macs(net, x.shape),
      "top_classes": [
          int(k) for k in np.bincount(np.argmax(probs, -1).ravel(),
                                      minlength=probs.shape[-1]).argsort()[::-1][:3]
      ],
  }, probs


def run_photos(loaded, side: int, out_dir: str, *, calibrate_bn: bool = False, repeats: int = 5,
               chunk: int = 16) -> dict:
  """An ImageNet network's score map on scikit-learn's two photos (see the module docstring)."""
  from sklearn.datasets import load_sample_images

  from bottleneck.analysis import plots
  from bottleneck.measure import complexity
  from bottleneck.util import env
  model, pre = loaded.model, loaded.preprocess
  size = model.image_size
  if model.in_channels != 3:
    raise ConfigError(f"this {loaded.config.model} takes {model.in_channels}-channel images "
                      f"({loaded.config.dataset}); the photos have 3 channels. Give a network "
                      "trained on colour images (e.g. from experiments.import_weights), or a "
                      "flatten + Dense classifier of the digits (configs/digits_fc_head.py).")
  if side < size:
    raise ConfigError(f"--image_size={side} is too small; the minimum is the training size "
                      f"{size}.")
  net = conversions.convolutionalize(model)
  photos = load_sample_images()
  images = [photo_input(im, side, size, net.stride) for im in photos.images]
  normalize = lambda im: jnp.asarray((im[None].astype(np.float32) / 255.0 - np.asarray(
      pre.mean, np.float32)) / np.asarray(pre.std, np.float32))
  inputs = [normalize(im) for im in images]
  if calibrate_bn:  # on up to 64 windows of each photo, spread over it
    windows = []
    for x in inputs:
      locs = [(i, j)
              for i in range(net.score_map_size(x.shape[1]))
              for j in range(net.score_map_size(x.shape[2]))]
      pick = np.linspace(0, len(locs) - 1, min(64, len(locs))).round().astype(int)
      windows.append(_windows(np.asarray(x[0]), size, net.stride, [locs[k] for k in pick]))
    calibrate_batch_norm(model, jnp.asarray(np.concatenate(windows)))
  score_map = nnx.jit(lambda m, x: m(x))
  classify = nnx.jit(lambda m, x: m(x))
  crop_macs = complexity.module_macs(model, (1, size, size, 3))
  results, files = [], []
  for path, original, image, x in zip(photos.filenames, photos.images, images, inputs):
    result, probs = _photo(model, net, x, score_map, classify, chunk, repeats)
    name = os.path.splitext(os.path.basename(path))[0]
    files.append(
        plots.photo_score_map(image, probs, net.stride, size, os.path.join(out_dir, f"{name}.png")))
    results.append({
        "photo": os.path.basename(path), "original_shape": list(original.shape),
        **result, "crop_macs": crop_macs
    })
  weights = (loaded.imported or {}).get("weights", "trained here")
  return {
      "kind": "photos", "model": loaded.config.model, "checkpoint_step": loaded.step,
      "weights": weights, "calibrated_bn": calibrate_bn, "stride": net.stride, "window": net.window,
      "training_size": size, "head": "dense" if net.pool_first else "conv", "photos": results,
      "files": files, "device": env.device_description()
  }


def format_text(out: dict) -> str:
  if out["kind"] == "photos":
    return format_photos(out)
  lines = [
      f"checkpoint: step {out['checkpoint_step']}",
      f"input {out['input_shape']} -> score map {out['score_map_shape']} "
      f"(stride {out['stride']})",
      f"every location vs the original classifier on its crop: max |diff| = "
      f"{out['max_abs_diff_vs_crops']:.3g} over {out['crops_checked']} crops"
  ]
  lines += [
      f"digit {p['label']} at ({p['row']}, {p['col']}): predicted {p['predicted']}"
      for p in out["digits"]
  ]
  lines.append(f"heat maps: {os.path.dirname(out['files'][0])}/ (heatmaps.png, class_*.png)")
  return "\n".join(lines)


def format_photos(out: dict) -> str:
  calibrated = ", batch norm calibrated on the photos" if out["calibrated_bn"] else ""
  head = ("Dense -> 1x1 conv"
          if out.get("head", "dense") == "dense" else "its 1x1 conv classifier at every location")
  lines = [
      f"{out['model']} ({out['weights']}{calibrated}): global pool -> {out['window']}x"
      f"{out['window']}/1 average pool, {head}; stride {out['stride']}"
  ]
  for p in out["photos"]:
    h, w, k = p["score_map_shape"]
    lines += [
        f"{p['photo']}: input {p['input_shape'][0]}x{p['input_shape'][1]} -> score map "
        f"{h}x{w}x{k} ({p['locations']} locations)",
        "  at the training size, map vs logits: max |diff| "
        f"{p['at_training_size_max_abs_diff']:.3g}",
        f"  every location vs the network on its {out['training_size']}x"
        f"{out['training_size']} crop: max relative diff {p['vs_crops_max_rel_diff']:.3g}, "
        f"same top-1 at {100 * p['vs_crops_top1_agreement']:.0f}% of locations",
        "  by ring from the map's edge (max rel diff): "
        + ", ".join(f"{r['ring']}: {r['max']:.3g}" for r in p["vs_crops_by_ring"]),
        f"  cost: one pass {p['map_time_s'] * 1e3:.0f} ms, one crop {p['crop_time_s'] * 1e3:.0f} "
        f"ms: {p['locations']}x the outputs for {p['time_ratio']:.1f}x the time "
        f"({p['map_macs'] / p['crop_macs']:.1f}x the MACs; crops one by one: "
        f"{p['locations']}x)"
    ]
  lines.append(f"heat maps: {os.path.dirname(out['files'][0])}/")
  return "\n".join(lines)
