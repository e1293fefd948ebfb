"""Write the pictures of docs/inputs.md to docs/img/ (run from the repository root).

    python examples/make_input_figures.py
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import adversarial_digits  # noqa: E402
import quadratic_input  # noqa: E402
import visualize_digits  # noqa: E402

OUT = str(pathlib.Path(__file__).resolve().parent.parent / "docs" / "img")

if __name__ == "__main__":
    quadratic_input.main(["--out", OUT])
    visualize_digits.main(["--out", OUT])
    adversarial_digits.main(["--out", OUT])
