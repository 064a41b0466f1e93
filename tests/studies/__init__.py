"""Tests of bottleneck/studies."""
