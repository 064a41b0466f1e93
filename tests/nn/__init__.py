"""Tests of bottleneck/nn."""
