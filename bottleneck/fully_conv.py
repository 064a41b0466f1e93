"""Sliding-window classification in one pass: a trained flatten + Dense classifier,
convolutionalized, on a canvas holding several test digits; heat maps of the score map."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from bottleneck import train, workdir as wd
from bottleneck.nn import conversions, models
from bottleneck.data import pipeline
from bottleneck.validation import ConfigError


def canvas_slots(size: int, tile: int, stride: int) -> list[tuple[int, int]]:
  """Where a digit may go: offsets that are multiples of `stride` and leave it whole."""
  return [(r, c) for r in range(0, size - tile + 1, stride)
          for c in range(0, size - tile + 1, stride)]


def _grid_step(tile: int, stride: int) -> int:
  """The smallest multiple of `stride` at least `tile`: slots this far apart never overlap."""
  return -(-tile // stride) * stride


def capacity(size: int, tile: int, stride: int) -> int:
  """How many non-overlapping digits a grid of slots `_grid_step` apart holds: the most
  `make_canvas` promises to place."""
  return len(range(0, size - tile + 1, _grid_step(tile, stride))) ** 2


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


def run(workdir: str, image_size: int, *, num_digits: int = 4, seed: int = 0,
        out_dir: str | None = None) -> dict:
  """Loads the classifier trained in `workdir`, convolutionalizes it, runs it on a canvas."""
  if out_dir is not None:
    wd.ensure_writable(out_dir, "--out_dir")  # before the work, not after it
  model, config, splits, step = train.load_trained_model(workdir)
  if not isinstance(model, models.FlattenHeadClassifier):
    raise ConfigError(f"{workdir} trained {config.model!r}; fully_conv needs a flatten + Dense "
                      "classifier (configs/digits_fc_head.py).")
  fully_conv = conversions.convolutionalize(model)
  if image_size < fully_conv.min_image_size:
    raise ConfigError(f"--image_size={image_size} is too small; the minimum is the training "
                      f"size {fully_conv.min_image_size}.")
  d = config.data
  canvas, placed = make_canvas(splits[config.eval_split], image_size, model.image_size,
                               fully_conv.stride, num_digits, seed)
  x = pipeline.Preprocess(image_size, model.in_channels, mean=d.mean, std=d.std)(
      [canvas], train=False)
  scores, diff, checked = conversions.crops_vs_score_map(model, fully_conv, jnp.asarray(x))
  probs = np.asarray(jax.nn.softmax(scores[0], axis=-1))
  for p in placed:  # the location whose window is exactly this digit
    p["predicted"] = int(np.argmax(probs[p["row"] // fully_conv.stride,
                                         p["col"] // fully_conv.stride]))
  from bottleneck import plots  # pylint: disable=g-import-not-at-top  # matplotlib, when drawing
  files = plots.heat_maps(canvas, probs, placed, fully_conv.stride,
                    out_dir or os.path.join(workdir, "fully_conv"))
  return {"checkpoint_step": step, "input_shape": list(x.shape),
          "score_map_shape": list(scores.shape[1:]), "max_abs_diff_vs_crops": diff,
          "crops_checked": checked, "stride": fully_conv.stride, "digits": placed,
          "files": files}


def format_text(out: dict) -> str:
  lines = [f"checkpoint: step {out['checkpoint_step']}",
           f"input {out['input_shape']} -> score map {out['score_map_shape']} "
           f"(stride {out['stride']})",
           f"every location vs the original classifier on its crop: max |diff| = "
           f"{out['max_abs_diff_vs_crops']:.3g} over {out['crops_checked']} crops"]
  lines += [f"digit {p['label']} at ({p['row']}, {p['col']}): predicted {p['predicted']}"
            for p in out["digits"]]
  lines.append(f"heat maps: {os.path.dirname(out['files'][0])}/ (heatmaps.png, class_*.png)")
  return "\n".join(lines)
