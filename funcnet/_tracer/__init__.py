"""Private implementation of :mod:`funcnet.tracer` (NumPy only; no JAX in this package)."""
