"""Tests of bottleneck/analysis."""
