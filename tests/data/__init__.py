"""Tests of bottleneck/data."""
