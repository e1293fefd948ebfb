"""The README's Python blocks run verbatim (a newcomer pastes them first), and print what the README says."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_blocks_run_and_print_the_worked_example():
    blocks = _python_blocks()
    assert len(blocks) >= 2, "the README shows a first look and the worked example"
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    text = out.getvalue()
    # the lectures' worked example, L = (x + y) z at (-2, 5, -4): grads (-4, -4, 3), and dL/dx forward = z = -4
    assert "(array(-4.), array(-4.), array(3.))" in text
    assert "(np.float64(-12.0), np.float64(-4.0))" in text
    np.testing.assert_allclose(namespace["images"].shape, (10, 8, 8))
    accuracy = float(re.findall(r"^(0\.\d+)$", text, flags=re.M)[0])
    assert accuracy > 0.9, f"the first-look MLP reaches about 97% test accuracy, printed {accuracy}"
