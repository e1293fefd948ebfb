"""Bundled and generated data sets (offline)."""

from funcnet._datasets import digits, moons, split, xor

__all__ = ["digits", "moons", "xor", "split"]
