"""Rendering of complexity reports."""

import io
import json

import pandas as pd
import pytest

from bottleneck import tables


def report(reduce, scale):
  return {"model": "toy", "reduce": reduce, "image_size": 8, "num_classes": 2,
          "total": {"params": 10 * scale, "batch_stats": 0, "macs": 100 * scale,
                    "flops": 200 * scale, "flops_xla": None},
          "layers": [{"name": "conv", "params": 10 * scale, "macs": 100 * scale,
                      "output_shape": [8, 8, 4], "widths": {"#1x1": 4} if reduce else {}},
                     {"name": "pool", "params": 0, "macs": 0, "output_shape": [4, 4, 4],
                      "widths": {}}]}


def test_side_by_side_ratios():
  frame = tables.complexity_frame([report(True, 1), report(False, 3)])
  conv = frame.set_index("layer").loc["conv"]
  assert conv["params naive/reduced"] == pytest.approx(3)
  assert conv["MACs naive/reduced"] == pytest.approx(3)
  assert pd.isna(frame.set_index("layer").loc["pool", "MACs naive/reduced"])  # 0/0: blank
  assert list(frame["layer"]) == ["conv", "pool", "total"]
  assert conv["#1x1"] == 4


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_text_formats(fmt):
  text = tables.render_reports([report(True, 1), report(False, 3)], fmt)
  assert "MACs naive/reduced" in text and "XLA FLOPs (G)" in text and "nan" not in text


def test_csv_and_json_round_trip():
  reports = [report(True, 1), report(False, 3)]
  frame = pd.read_csv(io.StringIO(tables.render_reports(reports, "csv")))
  assert frame.loc[frame["layer"] == "total", "params (naive)"].item() == 30
  assert json.loads(tables.render_reports(reports, "json")) == reports
  assert json.loads(tables.render_reports(reports[:1], "json")) == reports[0]
