"""Tests of bottleneck/train."""
