"""Finite differences vs backpropagation: time per gradient as the parameter count grows.

    python bench/bench_gradients.py            # prints a Markdown table, writes bench/results/gradients.json
    python bench/bench_gradients.py --quick    # fewer sizes and repeats

An MLP [16, h, 1] (tanh, half_mse on 32 examples, float64) for growing h. In the same
run, for each size:

* forward: one compiled loss evaluation;
* backprop: the compiled ``jax.grad`` of the loss (one forward + one backward pass);
* delta rule: the compiled hand-derived ``fn.manual.mlp_backprop``;
* finite differences: ``fn.check.numerical_grad`` (central) over the compiled loss —
  2n forward passes for n parameters.

Each is timed ``--repeats`` times after a warm-up; the table shows the median and
the spread (min–max). Finite differences are checked against backprop, so the
timed work is the right work.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import funcnet as fn


def _time(fn_, repeats: int) -> dict:
    fn_()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn_())
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "repeats": repeats}


def bench(hidden_sizes, repeats: int, fd_repeats: int, n_in: int = 16, batch: int = 32) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, n_in)))
    y = jnp.asarray(rng.normal(size=(batch, 1)))
    for h in hidden_sizes:
        model = fn.mlp([n_in, h, 1], activation="tanh", init="xavier")
        params = model.init(jax.random.key(h), dtype=jnp.float64)
        n = fn.param_count(params)

        def loss(p):
            return fn.losses.half_mse(model.apply(p, x), y)

        f = jax.jit(loss)
        g = jax.jit(jax.grad(loss))
        manual = jax.jit(lambda p: fn.manual.mlp_backprop(model, p, x, y, loss="half_mse"))
        p_np = jax.tree.map(np.asarray, params)
        row = {"hidden": h, "params": n,
               "forward_s": _time(lambda: f(params), repeats),
               "backprop_s": _time(lambda: g(params), repeats),
               "delta_rule_s": _time(lambda: manual(params), repeats),
               "finite_diff_s": _time(lambda: fn.check.numerical_grad(f, p_np), fd_repeats)}
        # the timed finite differences compute the right gradient
        num = fn.check.numerical_grad(f, p_np)
        ref = g(params)
        err = max(float(np.max(np.abs(a - np.asarray(b)))) for a, b in
                  zip(jax.tree.leaves(num), jax.tree.leaves(ref)))
        row["finite_diff_max_abs_error"] = err
        row["slowdown"] = row["finite_diff_s"]["median"] / row["backprop_s"]["median"]
        row["fd_over_forward"] = row["finite_diff_s"]["median"] / row["forward_s"]["median"]
        rows.append(row)
        print(f"  h={h:5d}  n={n:6d}  backprop {row['backprop_s']['median'] * 1e3:8.3f} ms  "
              f"finite differences {row['finite_diff_s']['median'] * 1e3:10.1f} ms", flush=True)
    return rows


def _num(x: float) -> str:
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def _ms(t: dict) -> str:
    return f"{_num(t['median'] * 1e3)} ({_num(t['min'] * 1e3)}–{_num(t['max'] * 1e3)})"


def markdown(rows: list[dict]) -> str:
    lines = ["| parameters n | forward pass (ms) | backprop, jax.grad (ms) | delta rule (ms) | "
             "finite differences (ms) | finite diff. / backprop | finite diff. / forward | 2n |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['params']} | {_ms(r['forward_s'])} | {_ms(r['backprop_s'])} | {_ms(r['delta_rule_s'])} | "
                     f"{_ms(r['finite_diff_s'])} | {_num(r['slowdown'])}× | {_num(r['fd_over_forward'])}× | "
                     f"{_num(2 * r['params'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[2, 8, 32, 128, 512])
    ap.add_argument("--repeats", type=int, default=21, help="timings per measurement for the fast methods")
    ap.add_argument("--fd-repeats", type=int, default=5, help="timings per measurement for finite differences")
    ap.add_argument("--quick", action="store_true", help="sizes 2 8 32, 5/3 repeats (a smoke run)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "results" / "gradients.json"))
    ap.add_argument("--table-only", action="store_true", help="reprint the Markdown table of --out and exit")
    args = ap.parse_args(argv)
    if args.table_only:
        print(markdown(json.loads(pathlib.Path(args.out).read_text())["rows"]))
        return 0
    if args.quick:
        args.hidden, args.repeats, args.fd_repeats = [2, 8, 32], 5, 3
    with jax.enable_x64(True):
        rows = bench(args.hidden, args.repeats, args.fd_repeats)
    table = markdown(rows)
    print(table)
    result = {
        "benchmark": "finite differences vs backprop, MLP [16, h, 1] tanh, half_mse, batch 32, float64",
        "timing": "median and min-max over repeats after one warm-up call; wall clock (time.perf_counter)",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "jax": jax.__version__, "numpy": np.__version__,
                    "devices": [str(d) for d in jax.devices()]},
        "rows": rows, "markdown": table,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
