"""Tests of bottleneck/measure."""
