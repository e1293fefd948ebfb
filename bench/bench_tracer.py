"""Benchmark funcnet.tracer against hand-written NumPy backprop, HIPS autograd and a micrograd-style reference.

Two tasks, every method measured in the same run and interleaved in rounds, a seeded shuffled order each
round (so that load on a shared machine hits all of them alike), with Python's garbage collector on:

* the gradient of a 784 -> 512 -> 10 tanh MLP with softmax cross-entropy (float64)
  at several batch sizes: funcnet's own model and loss under ``tracer.grad``, a
  hand-written NumPy backprop, and HIPS autograd;
* a 10,000-op scalar chain (``x * 1.0001 + 0.001``, repeated): ``tracer.grad``, a
  minimal micrograd-style ``Value`` class (``__slots__``, iterative backward; written
  below as the reference for Python-level overhead), and HIPS autograd. Timed with the
  garbage collector on (as users run) and off; load-independent counts too: gc
  collections per gradient, gc-tracked objects and bytes left per op by the forward pass.

Targets (issue 4/7): tracer within 1.1x of hand-written NumPy at batch 128 and above,
faster than autograd at every size; under 3 µs per op on the chain with the gc on.
The MLP ratio is judged as the median over rounds of (tracer sample / NumPy sample of the
same round), which a change of the machine's speed during the run cannot tip the way it can
tip a ratio of two medians (see ``_common.paired_ratio``); the tables give both, and the
ratio of the fastest samples.

Run: python bench/bench_tracer.py [--quick] [--out PATH] [--budget SECONDS]
Prints Markdown tables and writes <results>/tracer.json (with "table" and "targets").
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402

import funcnet as fn  # noqa: E402
from funcnet import tracer  # noqa: E402

SIZES = (784, 512, 10)
N_OPS = 10_000


def make_params(rng):
    w1 = rng.normal(size=SIZES[:2]) * np.sqrt(1.0 / SIZES[0])
    w2 = rng.normal(size=SIZES[1:]) * np.sqrt(1.0 / SIZES[1])
    return [{"w": w1, "b": np.zeros(SIZES[1])}, {"w": w2, "b": np.zeros(SIZES[2])}]


# ---------------------------------------------------------------- the MLP methods
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


def check_agreement(params, x, y):
    ref = grad_numpy(params, x, y)
    for other in (tracer.grad(loss_funcnet)(params, x, y), autograd.grad(loss_autograd)(params, x, y)):
        for a, b in zip(ref, other):
            for k in ("w", "b"):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------- the scalar chain methods
def chain(x, n=N_OPS):
    for _ in range(n // 2):
        x = x * 1.0001
        x = x + 0.001
    return x


class Value:
    """The micrograd-style reference: one ``__slots__`` object per op holding data, grad, parents, op."""

    __slots__ = ("data", "grad", "prev", "op")

    def __init__(self, data, prev=(), op=""):
        self.data, self.grad, self.prev, self.op = data, 0.0, prev, op

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), "+")

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), "*")

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:  # iterative topological sort (a 10,000-deep recursion would overflow)
            v, expanded = stack.pop()
            if expanded:
                order.append(v)
            elif id(v) not in seen:
                seen.add(id(v))
                stack.append((v, True))
                stack.extend((p, False) for p in v.prev)
        self.grad = 1.0
        for v in reversed(order):
            if v.op == "+":
                a, b = v.prev
                a.grad += v.grad
                b.grad += v.grad
            elif v.op == "*":
                a, b = v.prev
                a.grad += b.data * v.grad
                b.grad += a.data * v.grad


def grad_micrograd(x0, n=N_OPS):
    x = Value(x0)
    chain(x, n).backward()
    return x.grad


def grad_tracer_chain(x0, n=N_OPS):
    return tracer.grad(lambda v: chain(v, n))(x0)


def grad_autograd_chain(x0, n=N_OPS):
    return autograd.grad(lambda v: chain(v, n))(x0)


def forward_footprint(kind: str, n=N_OPS) -> dict:
    """gc-tracked objects and traced bytes per op that the forward pass leaves alive (load-independent)."""
    found = {}

    def probe(out):
        found["objects"] = len(gc.get_objects())
        found["bytes"] = tracemalloc.get_traced_memory()[0]
        return out

    gc.collect()
    base_objects = len(gc.get_objects())
    tracemalloc.start()
    base_bytes = tracemalloc.get_traced_memory()[0]
    try:
        if kind == "tracer":
            tracer.grad(lambda v: probe(chain(v, n)))(1.0)
        else:
            x = Value(1.0)
            probe(chain(x, n)).backward()
    finally:
        tracemalloc.stop()
    return {"tracked_objects_per_op": (found["objects"] - base_objects) / n,
            "bytes_per_op": (found["bytes"] - base_bytes) / n}


def gc_collections_per_call(f, calls: int) -> list[float]:
    """Collections of generations 0, 1, 2 per call of ``f`` (the gc on, as users run)."""
    before = [s["collections"] for s in gc.get_stats()]
    for _ in range(calls):
        f()
    return [(s["collections"] - b) / calls for s, b in zip(gc.get_stats(), before)]


def minor_faults_per_call(f, calls: int) -> float:
    """Minor page faults per call (load-independent): memory the allocator returned to the OS and takes back."""
    f()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        f()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


# --------------------------------------------------------------------- helpers
def batched(f, seconds: float):
    """``(g, loops)``: ``g()`` calls ``f`` ``loops`` times, about ``seconds`` in all (after one warm-up call)."""
    f()
    once = max(C.time_once(f), 1e-6)
    loops = max(1, int(seconds / once))

    def g():
        for _ in range(loops):
            f()

    return g, loops


def interleaved(fns: dict, repeats: int, seconds: float) -> dict:
    timed, per = {}, {}
    for k, f in fns.items():
        timed[k], per[k] = batched(f, seconds)
    return C.time_interleaved(timed, repeats=repeats, warmup=0, per=per)


def measure_mlp(batches, repeats, sample_s, deadline, *, with_autograd, budget):
    """Interleaved timings of the MLP gradient per batch size, and page faults per call."""
    rng = np.random.default_rng(0)
    params = make_params(rng)
    mlp, faults = {}, {}
    tg, ag = tracer.grad(loss_funcnet), autograd.grad(loss_autograd)
    for b in batches:
        if deadline.left() < 0.35 * budget:  # keep the rest of the budget for the chain
            break
        x, y = rng.normal(size=(b, SIZES[0])), rng.integers(0, SIZES[2], size=b)
        check_agreement(params, x, y)
        fns = {"numpy": lambda: grad_numpy(params, x, y), "tracer": lambda: tg(params, x, y)}
        if with_autograd:
            fns["autograd"] = lambda: ag(params, x, y)
        mlp[b] = interleaved(fns, repeats, sample_s)
        faults[b] = {"numpy": minor_faults_per_call(lambda: grad_numpy(params, x, y), 10),
                     "tracer": minor_faults_per_call(lambda: tg(params, x, y), 10)}
    return mlp, faults


def measure_fixed_cost(repeats: int) -> dict:
    """The per-call cost that does not scale with the batch: both methods on a 4-3-2 tanh network.

    Timed in a hot loop and right after one hand-written MLP gradient at batch 128 (BLAS work that evicts the
    interpreter's caches, as it does between the Python steps of the large MLP), per call, in µs.
    """
    rng = np.random.default_rng(1)
    tiny = [{"w": rng.normal(size=(4, 3)), "b": np.zeros(3)}, {"w": rng.normal(size=(3, 2)), "b": np.zeros(2)}]
    model = fn.mlp([4, 3, 2], activation="tanh")
    loss = lambda p, x, y: fn.losses.softmax_cross_entropy(model.apply(p, x), y)  # noqa: E731
    tg = tracer.grad(loss)
    xs, ys = rng.normal(size=(8, 4)), rng.integers(0, 2, size=8)
    big = make_params(rng)
    xb, yb = rng.normal(size=(128, SIZES[0])), rng.integers(0, SIZES[2], size=128)
    fns = {"numpy": lambda: grad_numpy(tiny, xs, ys), "tracer": lambda: tg(tiny, xs, ys)}
    out = {}
    for k, f in fns.items():
        hot, cold = [], []
        for _ in range(20 * repeats):
            t = time.perf_counter()
            f()
            hot.append(time.perf_counter() - t)
            grad_numpy(big, xb, yb)
            t = time.perf_counter()
            f()
            cold.append(time.perf_counter() - t)
        out[k] = {"hot_us": 1e6 * statistics.median(hot), "after_blas_us": 1e6 * statistics.median(cold)}
    return out


# glibc: never give freed heap memory back to the OS, never mmap arrays (both 256 MiB thresholds)
STEADY_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 28), "MALLOC_MMAP_THRESHOLD_": str(1 << 28)}


def steady_allocator_mlp(args) -> dict | None:
    """The MLP comparison again, in a child process with STEADY_MALLOC set (NumPy and tracer alike)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mlp-child", "--budget", str(0.6 * args.budget)]
    if args.quick:
        cmd.append("--quick")
    try:
        out = subprocess.run(cmd, env={**os.environ, **STEADY_MALLOC}, capture_output=True, text=True,
                             timeout=args.budget, check=True).stdout
        child = json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        print(f"steady-allocator run failed: {e}", file=sys.stderr)
        return None
    return {"env": STEADY_MALLOC, "mlp": child["mlp"], "faults": child["faults"]}


# ------------------------------------------------------------------------ main
def main():
    ap = C.arg_parser(__doc__.splitlines()[0], budget=150.0)
    ap.add_argument("--mlp-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    deadline = C.Deadline(args.budget)
    # 15 rounds (was 9): fewer let one slow phase of the machine decide a median
    repeats = 3 if args.quick else 15
    batches = (16, 128) if args.quick else (16, 64, 128, 256, 512)
    sample_s = 0.02 if args.quick else 0.15
    n_ops = 2_000 if args.quick else N_OPS
    assert gc.isenabled(), "the benchmark measures with the garbage collector on"

    if args.mlp_child:
        mlp, faults = measure_mlp(batches, repeats, sample_s, deadline, with_autograd=False, budget=args.budget)
        print(json.dumps({"mlp": {str(b): r for b, r in mlp.items()}, "faults": {str(b): f for b, f in faults.items()}}))
        return

    # ---- MLP, as the process starts (default allocator settings) ...
    mlp, faults = measure_mlp(batches, repeats, sample_s, deadline, with_autograd=True, budget=args.budget)
    # ... and in a child process where glibc neither trims the heap nor mmaps large arrays, so that no method
    # pays page faults (which of the two does under the defaults depends on the process's allocation history)
    steady = steady_allocator_mlp(args) if not deadline.passed else None

    fixed = measure_fixed_cost(repeats) if not deadline.passed else None

    # ---- scalar chain
    g = grad_tracer_chain(1.0, n_ops)
    assert abs(float(g) - 1.0001 ** (n_ops // 2)) < 1e-9 and abs(grad_micrograd(1.0, n_ops) - float(g)) < 1e-9
    chain_fns = {"tracer": lambda: grad_tracer_chain(1.0, n_ops), "micrograd": lambda: grad_micrograd(1.0, n_ops)}
    chain_on = C.time_interleaved(chain_fns, repeats=2 * repeats, warmup=1, per=n_ops)
    gc.disable()
    try:
        chain_off = C.time_interleaved(chain_fns, repeats=2 * repeats, warmup=1, per=n_ops)
    finally:
        gc.enable()
    auto_on = None
    if not deadline.passed:
        auto_on = C.time_interleaved({"autograd": lambda: grad_autograd_chain(1.0, n_ops),
                                      "tracer": chain_fns["tracer"]}, repeats=max(3, repeats // 2), per=n_ops)
    counts = {k: gc_collections_per_call(f, 5) for k, f in chain_fns.items()}
    footprint = {k: forward_footprint(k, n_ops) for k in chain_fns}

    # ---- report
    us = lambda s: s["median"] * 1e6  # noqa: E731
    ms = lambda s: s["median"] * 1e3  # noqa: E731
    table = []
    for b, r in mlp.items():
        table.append({"task": f"MLP {'-'.join(map(str, SIZES))} grad, ms", "setting": f"batch {b}",
                      "funcnet.tracer": round(ms(r["tracer"]), 3), "reference": "hand-written NumPy",
                      "reference value": round(ms(r["numpy"]), 3),
                      "tracer / reference": round(C.ratio(r["tracer"], r["numpy"]), 3),
                      "median of per-round ratios": round(C.paired_ratio(r["tracer"], r["numpy"]), 3),
                      "ratio of fastest samples": round(r["tracer"]["min"] / r["numpy"]["min"], 3),
                      "autograd": round(ms(r["autograd"]), 3),
                      "autograd / tracer": round(C.ratio(r["autograd"], r["tracer"]), 3),
                      "page faults per call (tracer / NumPy)": f"{faults[b]['tracer']:.0f} / {faults[b]['numpy']:.0f}"})
    if steady is not None:
        for b, r in steady["mlp"].items():
            f = steady["faults"][b]
            table.append({"task": f"MLP {'-'.join(map(str, SIZES))} grad, ms", "setting": f"batch {b}, no heap trimming",
                          "funcnet.tracer": round(ms(r["tracer"]), 3), "reference": "hand-written NumPy",
                          "reference value": round(ms(r["numpy"]), 3),
                          "tracer / reference": round(C.ratio(r["tracer"], r["numpy"]), 3),
                          "median of per-round ratios": round(C.paired_ratio(r["tracer"], r["numpy"]), 3),
                          "ratio of fastest samples": round(r["tracer"]["min"] / r["numpy"]["min"], 3),
                          "page faults per call (tracer / NumPy)": f"{f['tracer']:.0f} / {f['numpy']:.0f}"})
    if fixed is not None:
        for key, setting in (("hot_us", "hot loop"), ("after_blas_us", "right after a batch-128 MLP gradient")):
            table.append({"task": "fixed cost per call: 4-3-2 network, µs", "setting": setting,
                          "funcnet.tracer": round(fixed["tracer"][key], 1), "reference": "hand-written NumPy",
                          "reference value": round(fixed["numpy"][key], 1),
                          "tracer / reference": round(fixed["tracer"][key] / fixed["numpy"][key], 3)})
    for setting, r in (("gc on", chain_on), ("gc off", chain_off)):
        row = {"task": f"scalar chain of {n_ops} ops, µs/op", "setting": setting,
               "funcnet.tracer": round(us(r["tracer"]), 3), "reference": "micrograd-style Value",
               "reference value": round(us(r["micrograd"]), 3),
               "tracer / reference": round(C.ratio(r["tracer"], r["micrograd"]), 3),
               "ratio of fastest samples": round(r["tracer"]["min"] / r["micrograd"]["min"], 3)}
        if setting == "gc on" and auto_on is not None:
            row["autograd"] = round(us(auto_on["autograd"]), 3)
            row["autograd / tracer"] = round(C.ratio(auto_on["autograd"], auto_on["tracer"]), 3)
        table.append(row)
    fmt_counts = lambda c: "/".join(f"{v:g}" for v in c)  # noqa: E731
    table.append({"task": "scalar chain: gc collections per grad (gen0/gen1/gen2)", "setting": "gc on",
                  "funcnet.tracer": fmt_counts(counts["tracer"]), "reference": "micrograd-style Value",
                  "reference value": fmt_counts(counts["micrograd"])})
    for key, what in (("tracked_objects_per_op", "gc-tracked objects left per op"), ("bytes_per_op", "bytes left per op")):
        t, m = footprint["tracer"][key], footprint["micrograd"][key]
        table.append({"task": f"scalar chain forward: {what}", "setting": "before backward",
                      "funcnet.tracer": round(t, 2), "reference": "micrograd-style Value",
                      "reference value": round(m, 2), "tracer / reference": round(t / m, 3) if m else None})

    targets = []
    for label, runs in (("", mlp), (", no heap trimming", (steady or {}).get("mlp", {}))):
        for b in (128, 256, 512):
            if b in mlp or not args.quick:
                r = runs.get(b, runs.get(str(b)))
                v = round(C.paired_ratio(r["tracer"], r["numpy"]), 3) if r else None
                targets.append(C.target(f"tracer.grad MLP / hand-written NumPy, batch {b}{label}", "<= 1.1x", v,
                                      (v <= 1.1) if v is not None else None,
                                      f"median over {r['tracer']['n']} interleaved rounds of the round's ratio; "
                                      f"ratio of medians {C.ratio(r['tracer'], r['numpy']):.3f}, of fastest samples "
                                      f"{r['tracer']['min'] / r['numpy']['min']:.3f}" if r else "not measured"))
    worst = min((C.ratio(r["autograd"], r["tracer"]) for r in mlp.values()), default=None)
    targets.append(C.target("autograd / tracer.grad MLP, every batch size", "> 1x",
                          round(worst, 3) if worst is not None else None,
                          (worst > 1.0) if worst is not None else None,
                          f"smallest over batches {list(mlp)}"))
    v = round(us(chain_on["tracer"]), 3)
    targets.append(C.target(f"tracer.grad scalar chain ({n_ops} ops), gc on", "< 3 µs/op", v, v < 3.0,
                          f"micrograd-style reference {us(chain_on['micrograd']):.2f} µs/op in the same run "
                          f"(ratio {C.ratio(chain_on['tracer'], chain_on['micrograd']):.2f}); absolute time depends on load"))

    print(f"## funcnet.tracer benchmark ({C.cpu_model()}, Python {sys.version.split()[0]}, NumPy {np.__version__}, "
          f"gc on unless stated; load {C.load_average()})\n")
    print(_md(table))
    print("### Targets\n")
    print(_md([{k: t[k] for k in ("name", "target", "value", "met")} for t in targets]))
    payload = {"repeats": repeats, "sample_seconds": sample_s,
               "mlp": {str(b): r for b, r in mlp.items()},
               "mlp_minor_faults_per_call": {str(b): v for b, v in faults.items()},
               "mlp_no_heap_trimming": steady, "fixed_cost_per_call": fixed,
               "scalar_chain": {"ops": n_ops, "gc_on": chain_on, "gc_off": chain_off, "autograd_gc_on": auto_on,
                                "gc_collections_per_grad": counts, "forward_footprint": footprint},
               "table": table, "targets": targets}
    path = C.write_json("tracer", payload, out=args.out, quick=args.quick)
    print(f"wrote {path} in {deadline.elapsed():.0f} s")


def _md(rows):
    cols = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
