"""Benchmark funcnet.tracer against hand-written NumPy backprop and HIPS autograd.

Task: the gradient of a 784 -> 512 -> 10 tanh MLP with softmax cross-entropy
(float64) at several batch sizes, all three on the same data, measured in the same
run with the methods interleaved (so that load on a shared machine hits all of them
alike); and a 10,000-op scalar chain, with Python's garbage collector on.

Run: python bench/bench_tracer.py [--quick]
Prints a Markdown table and writes bench/results/tracer.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from pathlib import Path

import autograd
import autograd.numpy as anp
import numpy as np

import funcnet as fn
from funcnet import tracer

SIZES = (784, 512, 10)


def make_params(rng):
    w1 = rng.normal(size=SIZES[:2]) * np.sqrt(1.0 / SIZES[0])
    w2 = rng.normal(size=SIZES[1:]) * np.sqrt(1.0 / SIZES[1])
    return [{"w": w1, "b": np.zeros(SIZES[1])}, {"w": w2, "b": np.zeros(SIZES[2])}]


# ---------------------------------------------------------------- the three methods
MODEL = fn.mlp(list(SIZES), activation="tanh")


def loss_funcnet(params, x, y):
    """funcnet's own model and loss: the code that also runs under jax.grad."""
    return fn.losses.softmax_cross_entropy(MODEL.apply(params, x), y)


def grad_numpy(params, x, y):
    """Hand-written backprop (the delta rule) for the same network and loss."""
    (l1, l2) = params
    m = x.shape[0]
    a1 = np.tanh(x @ l1["w"] + l1["b"])
    z2 = a1 @ l2["w"] + l2["b"]
    z2 = z2 - z2.max(axis=1, keepdims=True)
    p = np.exp(z2)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(m), y] -= 1.0
    dz2 = p / m
    da1 = dz2 @ l2["w"].T
    dz1 = da1 * (1.0 - a1 * a1)
    return [{"w": x.T @ dz1, "b": dz1.sum(0)}, {"w": a1.T @ dz2, "b": dz2.sum(0)}]


def loss_autograd(params, x, y):
    (l1, l2) = params
    a1 = anp.tanh(anp.dot(x, l1["w"]) + l1["b"])
    z2 = anp.dot(a1, l2["w"]) + l2["b"]
    z2 = z2 - anp.max(z2, axis=1, keepdims=True)
    logp = z2 - anp.log(anp.sum(anp.exp(z2), axis=1, keepdims=True))
    return -anp.mean(logp[np.arange(x.shape[0]), y])


def chain(x, n):
    for _ in range(n // 2):
        x = x * 1.0001
        x = x + 0.001
    return x


# --------------------------------------------------------------------- timing
def interleaved(fns: dict, repeats: int, min_time: float = 0.05) -> dict:
    """Median and spread (min, max) of seconds per call for each function, measured round-robin."""
    loops = {}
    for name, f in fns.items():
        f()
        t = time.perf_counter()
        f()
        once = max(time.perf_counter() - t, 1e-6)
        loops[name] = max(1, int(min_time / once))
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            n = loops[name]
            t = time.perf_counter()
            for _ in range(n):
                f()
            samples[name].append((time.perf_counter() - t) / n)
    return {name: {"median": statistics.median(s), "min": min(s), "max": max(s), "repeats": repeats,
                   "loops": loops[name]} for name, s in samples.items()}


def check_agreement(params, x, y):
    ref = grad_numpy(params, x, y)
    for other in (tracer.grad(loss_funcnet)(params, x, y), autograd.grad(loss_autograd)(params, x, y)):
        for a, b in zip(ref, other):
            for k in ("w", "b"):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and batch sizes (a smoke run)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tracer.json"))
    args = ap.parse_args()
    repeats = 3 if args.quick else 9
    batches = (16, 128) if args.quick else (16, 64, 128, 256, 512)
    rng = np.random.default_rng(0)
    params = make_params(rng)
    assert gc.isenabled()

    rows, mlp = [], {}
    tg, ag = tracer.grad(loss_funcnet), autograd.grad(loss_autograd)
    for b in batches:
        x, y = rng.normal(size=(b, SIZES[0])), rng.integers(0, SIZES[2], size=b)
        check_agreement(params, x, y)
        r = interleaved({"numpy": lambda: grad_numpy(params, x, y), "tracer": lambda: tg(params, x, y),
                         "autograd": lambda: ag(params, x, y)}, repeats)
        mlp[b] = r
        rows.append((b, r))

    n_ops = 10_000
    chain_fns = {"tracer": lambda: tracer.grad(lambda v: chain(v, n_ops))(1.0),
                 "autograd": lambda: autograd.grad(lambda v: chain(v, n_ops))(1.0)}
    chain_r = interleaved(chain_fns, repeats, min_time=0.2)
    gc.disable()
    chain_nogc = interleaved({"tracer": chain_fns["tracer"]}, repeats, min_time=0.2)["tracer"]
    gc.enable()
    g = tracer.grad(lambda v: chain(v, n_ops))(1.0)
    assert abs(float(g) - 1.0001 ** (n_ops // 2)) < 1e-9

    print(f"## funcnet.tracer benchmark ({platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, autograd, float64)\n")
    print("Gradient of a 784-512-10 tanh MLP with softmax cross-entropy; median ms per gradient "
          f"[min-max] over {repeats} interleaved repeats.\n")
    print("| batch | hand-written NumPy | funcnet.tracer | HIPS autograd | tracer / NumPy | autograd / tracer |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, r in rows:
        f = lambda k: f"{r[k]['median']*1e3:.2f} [{r[k]['min']*1e3:.2f}-{r[k]['max']*1e3:.2f}]"
        print(f"| {b} | {f('numpy')} | {f('tracer')} | {f('autograd')} | "
              f"{r['tracer']['median']/r['numpy']['median']:.2f}x | {r['autograd']['median']/r['tracer']['median']:.2f}x |")
    us = lambda d: d["median"] / n_ops * 1e6
    print(f"\nScalar chain of {n_ops} ops (grad = forward + backward), gc on: tracer "
          f"{us(chain_r['tracer']):.2f} µs/op [{chain_r['tracer']['min']/n_ops*1e6:.2f}-{chain_r['tracer']['max']/n_ops*1e6:.2f}], "
          f"autograd {us(chain_r['autograd']):.2f} µs/op; tracer with gc off {us(chain_nogc):.2f} µs/op.")

    result = {
        "machine": {"processor": platform.processor(), "python": platform.python_version(), "numpy": np.__version__},
        "repeats": repeats,
        "mlp": {str(b): {k: {kk: vv for kk, vv in v.items()} for k, v in r.items()} for b, r in mlp.items()},
        "ratios": {str(b): {"tracer_over_numpy": r["tracer"]["median"] / r["numpy"]["median"],
                            "autograd_over_tracer": r["autograd"]["median"] / r["tracer"]["median"]}
                   for b, r in mlp.items()},
        "scalar_chain": {"ops": n_ops, "tracer_us_per_op_gc_on": us(chain_r["tracer"]),
                         "autograd_us_per_op_gc_on": us(chain_r["autograd"]),
                         "tracer_us_per_op_gc_off": us(chain_nogc), "raw": chain_r},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
