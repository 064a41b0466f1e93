"""Tests of bottleneck/util."""
