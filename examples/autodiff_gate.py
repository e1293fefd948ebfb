"""The lectures' small graphs, differentiated by funcnet's from-scratch tracer.

Run: python examples/autodiff_gate.py
"""

import numpy as np

import funcnet as fn
from funcnet import tracer


def gate(x, y, z):
    q = tracer.name(x + y, "q")
    return tracer.name(q * z, "L")


def main():
    print("L = (x + y) z at x=-2, y=5, z=-4")
    tracer.trace(gate, -2.0, 5.0, -4.0).explain()

    # forward mode: one pass per input direction, each value carrying its tangent (the lectures' table)
    print("\nForward mode, tangent along x:")
    text = tracer.trace(gate, -2.0, 5.0, -4.0, tangents=(1.0, 0.0, 0.0)).text()
    print(text[text.index("Forward mode"):])
    for name, direction in (("x", (1.0, 0.0, 0.0)), ("y", (0.0, 1.0, 0.0)), ("z", (0.0, 0.0, 1.0))):
        value, tangent = tracer.jvp(gate, (-2.0, 5.0, -4.0), direction)
        print(f"jvp along {name}: L = {float(value):g}, dL/d{name} = {float(tangent):g}")

    J = lambda w, b: ((w * 2.0 + b) - 5.0) ** 2  # x=2, y=5
    dw, db = tracer.grad(J, argnums=(0, 1))(3.0, 4.0)
    print(f"\nJ = ((w x + b) - y)^2 at x=2, y=5, w=3, b=4: dJ/dw = {float(dw):g}, dJ/db = {float(db):g}")

    neuron = lambda w1, w2: w2 * fn.activations.sigmoid(w1 * 0.0)  # x = 0
    d1, d2 = tracer.grad(neuron, argnums=(0, 1))(0.0, 0.0)
    print(f"y = w2 sigma(w1 x) at x = w1 = w2 = 0: dy/dw1 = {float(d1):g}, dy/dw2 = {float(d2):g}")

    g = tracer.grad(lambda x: (3 * (x + 2) ** 2).mean())(np.ones((2, 2)))
    print("d mean(3 (x+2)^2) / dx at x = ones(2, 2):\n", g)


if __name__ == "__main__":
    main()
