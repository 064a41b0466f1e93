"""Intervals for an accuracy difference that account for the seeds and for the finite test set.

Two configs trained with n seeds each, scored on the same N test examples: `difference_interval`
is mean(d) +- sqrt(t^2 s_d^2 / n + z^2 var(delta) / N), the seeds' variance with Student's t at
n - 1 degrees of freedom plus the test set's, from the per-example differences delta_i, which
every seed shares (it errs on the wide side). Without per-example predictions,
`seed_interval` is the t-interval over seeds alone. Why, and its calibration: docs/ablations.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

LEVEL = 0.95
SEEDS_AND_TEST = "seeds + test set"
SEEDS_ONLY = "seeds only (no per-example predictions)"


@dataclasses.dataclass(frozen=True)
class Interval:
  """A difference in points (A minus B) and its interval; `covers` names the noise counted."""
  difference: float
  low: float
  high: float
  seeds: int
  examples: int | None
  covers: str

  def text(self) -> str:
    return f"[{self.low:+.2f}, {self.high:+.2f}]"

  def holds_zero(self) -> bool:
    return self.low <= 0 <= self.high


def _t_interval(mean: float, variance: float, df: int, level: float):
  """mean +- t_df sqrt(variance)."""
  half = stats.t.ppf((1 + level) / 2, df) * np.sqrt(max(variance, 0.0))
  return mean - half, mean + half


def difference_interval(correct_a, correct_b, level: float = LEVEL) -> Interval | None:
  """The interval of mean accuracy A minus B (points) from per-example outcomes, arrays of
  shape (seeds, examples), row s of A paired with row s of B (same seed, or independent seeds
  of two disjoint sets); None with fewer than 2 seeds."""
  a, b = np.asarray(correct_a, np.float64), np.asarray(correct_b, np.float64)
  if a.shape != b.shape or a.ndim != 2:
    raise ValueError(f"outcomes of shapes {a.shape} and {b.shape}: both must be "
                     "(seeds, examples), the same")
  n, num = a.shape
  if n < 2 or num < 2:
    return None
  d = 100 * (a.mean(1) - b.mean(1))  # per seed, points
  delta = 100 * (a - b).mean(0)  # per example, averaged over seeds
  # Each term with its own quantile: Student's t at n - 1 degrees of freedom for the seeds'
  # variance (estimated from n values), the normal one for the test set's (from N examples).
  t, z = stats.t.ppf((1 + level) / 2, n - 1), stats.norm.ppf((1 + level) / 2)
  half = float(np.sqrt(t**2 * d.var(ddof=1) / n + z**2 * delta.var(ddof=1) / num))
  lo, hi = float(d.mean()) - half, float(d.mean()) + half
  return Interval(float(d.mean()), lo, hi, n, num, SEEDS_AND_TEST)


def seed_interval(diffs, level: float = LEVEL) -> Interval | None:
  """The Student-t interval of the mean of per-seed differences (points) alone: the test set's
  noise is not in it. None with fewer than 2 seeds."""
  d = np.asarray(diffs, np.float64)
  if len(d) < 2:
    return None
  lo, hi = _t_interval(float(d.mean()), float(d.var(ddof=1)) / len(d), len(d) - 1, level)
  return Interval(float(d.mean()), lo, hi, len(d), None, SEEDS_ONLY)


def verdict(interval: Interval | None, first: str = "naive", second: str = "reduced") -> str:
  """Which of `first` and `second` is more accurate, or "within noise" when the interval of
  `first` minus `second` holds 0."""
  if interval is None:
    return "no interval (fewer than 2 seeds paired)"
  if interval.low > 0:
    return f"{first} more accurate"
  if interval.high < 0:
    return f"{second} more accurate"
  return "within noise"
