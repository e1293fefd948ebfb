"""Gradient checking: finite differences and a report comparing jax.grad, the tracer and the delta rule.

    import funcnet as fn
    report = fn.check.compare_grads(f, params)
    print(report)          # a table per leaf and pair of methods
    assert report.ok

See `compare_grads`, `numerical_grad` and the docs page
"Three ways to compute gradients".
"""

from funcnet.check._compare import (
    METHODS,
    GradCheckWarning,
    GradReport,
    LeafComparison,
    compare_grads,
    default_step,
    numerical_grad,
)

__all__ = ["numerical_grad", "compare_grads", "GradReport", "LeafComparison", "GradCheckWarning",
           "default_step", "METHODS"]
