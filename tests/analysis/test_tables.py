"""Rendering of complexity reports."""

import io
import json

import pandas as pd
import pytest

from bottleneck.analysis import tables


def report(reduce, scale):
  return {
      "model": "toy", "reduce": reduce, "image_size": 8, "num_classes": 2, "total": {
          "params": 10 * scale, "batch_stats": 0, "macs": 100 * scale, "flops": 200 * scale,
          "flops_xla": None
      }, "layers": [{
          "name": "conv", "params": 10 * scale, "macs": 100 * scale, "output_shape": [8, 8, 4],
          "widths": {"#1x1": 4} if reduce else {}
      }, {"name": "pool", "params": 0, "macs": 0, "output_shape": [4, 4, 4], "widths": {}}]
  }


def test_side_by_side_ratios():
  frame = tables.complexity_frame([report(True, 1), report(False, 3)])
  conv = frame.set_index("layer").loc["conv"]
  assert conv["params naive/reduced"] == pytest.approx(3)
  assert conv["MACs naive/reduced"] == pytest.approx(3)
  assert pd.isna(frame.set_index("layer").loc["pool", "MACs naive/reduced"])  # 0/0: blank
  assert list(frame["layer"]) == ["conv", "pool", "total"]
  assert conv["#1x1"] == 4


def test_widths_keep_table_1s_order_when_read_back_from_json():
  """A reused complexity JSON has its keys sorted ("#3x3" before "#3x3 reduce"): the report's
  per-block table used to change its column order on a rerun."""
  reduced = report(True, 1)
  reduced["layers"][0]["widths"] = {"#1x1": 4, "#3x3 reduce": 2, "#3x3": 3, "pool proj": 1}
  fresh = tables.complexity_frame([reduced, report(False, 3)])
  reread = tables.complexity_frame(
      json.loads(json.dumps([reduced, report(False, 3)], sort_keys=True)))
  assert list(fresh.columns[1:5]) == ["#1x1", "#3x3 reduce", "#3x3", "pool proj"]
  pd.testing.assert_frame_equal(fresh, reread)


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


def with_memory(rep, scale):
  rep = json.loads(json.dumps(rep))
  rep["dtype"] = "float32"
  rep["total"].update(train_activation_bytes=2e6 * scale, backward_minimum_bytes=1e6 * scale,
                      largest_tensor_bytes=4e5, train_activation_bytes_xla=None)
  for layer in rep["layers"]:
    layer.update(bytes=1000 * scale, intensity=2.5, conv_bytes=1200 * scale,
                 saved_bytes=3000 * scale, convs=[])
  return rep


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_memory_tables(fmt):
  text = tables.render_reports([with_memory(report(True, 1), 1),
                                with_memory(report(False, 3), 3)], fmt)
  assert "saved (naive, KB)" in text and "train activations (MB/image)" in text
  assert "6.00" in text  # naive: 6 MB per image
  assert "nan" not in text and "None" not in text


def test_memory_csv_has_the_memory_columns():
  reports = [with_memory(report(True, 1), 1), with_memory(report(False, 3), 3)]
  frame = pd.read_csv(io.StringIO(tables.render_reports(reports, "csv")))
  assert frame.set_index("layer").loc["conv", "saved (naive, KB)"] == 9.0
  assert {"bytes (reduced, KB)", "FLOP/B (naive)", "conv bytes (reduced, KB)"} <= set(frame)
