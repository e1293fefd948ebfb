"""Data-parallel step time against device count: the 784-512-512-10 MLP, Adam, global batch 256.

    python bench/bench_scaling.py [--quick] [--devices 1 2 4 8] [--batch 256]

Every device count D runs in its own subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=D
JAX_PLATFORMS=cpu`` (the count is fixed when JAX starts), builds a 1-D ``"data"`` mesh over the D devices
and times a compiled step (``funcnet.sharding.data_parallel_jit``: batch split over the mesh, parameters
and Adam state replicated, XLA's gradient all-reduce). Same global batch at every D (strong scaling).

What the CPU figures mean: forced host devices are *virtual*. All D of them share this machine's cores
(``os.cpu_count()``, recorded in the JSON), so beyond the core count more devices cannot run faster; the
table measures the overhead of splitting and all-reducing (and any gain from running shards on idle
cores), not the speed-up of D real accelerators. Writes ``<results>/scaling.json`` (``table`` rows for
``run_all.py``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common

SIZES = [784, 512, 512, 10]


def child(devices: int, batch: int, repeats: int, steps: int) -> dict:
    import jax
    import numpy as np
    import optax

    sys.path.insert(0, str(_common.REPO_ROOT))
    import funcnet as fn
    from funcnet import sharding

    assert jax.device_count() == devices, (jax.device_count(), devices)
    mesh = sharding.resolve_mesh(jax.devices())
    model = fn.mlp(SIZES, activation="relu")
    opt = optax.adam(1e-3)

    def loss_fn(p, b):
        return fn.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1])

    def step(p, s, b):
        loss, g = jax.value_and_grad(loss_fn)(p, b)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    rng = np.random.default_rng(0)
    batch = sharding.shard_batch((rng.random((batch, SIZES[0]), np.float32),
                                  rng.integers(0, SIZES[-1], batch).astype(np.int32)), mesh)
    params = sharding.replicate(model.init(jax.random.key(0)), mesh)
    state = sharding.replicate(opt.init(params), mesh)
    f = sharding.data_parallel_jit(step, mesh, donate_argnums=(0, 1))
    t0 = time.perf_counter()
    params, state, loss = f(params, state, batch)
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - t0
    carry = [params, state]

    def run():
        p, s = carry
        for _ in range(steps):
            p, s, l = f(p, s, batch)
        carry[:] = [p, s]
        return l

    stats = _common.time_fn(run, repeats=repeats, warmup=1, per=steps)
    return {"devices": devices, "batch": int(batch[0].shape[0]), "step": stats, "first_call_s": compile_s}


def parent(args) -> int:
    deadline = _common.Deadline(args.budget)
    counts = [1, 2] if args.quick and args.devices is None else (args.devices or [1, 2, 4, 8])
    batch = args.batch or (64 if args.quick else 256)
    repeats, steps = (2, 2) if args.quick else (7, 10)
    rows, runs = [], []
    for d in counts:
        if deadline.passed:
            print(f"budget spent: skipping {d} devices", file=sys.stderr)
            continue
        if batch % d:
            print(f"skipping {d} devices: batch {batch} is not a multiple of it", file=sys.stderr)
            continue
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={d}", JAX_PLATFORMS="cpu")
        proc = subprocess.run([sys.executable, __file__, "--child", str(d), "--batch", str(batch),
                               "--repeats", str(repeats), "--steps", str(steps)],
                              env=env, capture_output=True, text=True, timeout=max(60.0, deadline.left() + 60))
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = runs[0]["step"]["median"] if runs and runs[0]["devices"] == 1 else None
    for r in runs:
        med = r["step"]["median"]
        rows.append({
            "devices": r["devices"],
            "global batch": r["batch"],
            "per-device batch": r["batch"] // r["devices"],
            "step (median)": _common.fmt_time(med),
            "IQR": _common.fmt_time(r["step"]["iqr"]),
            "vs 1 device": f"{base / med:.2f}x" if base else "—",
            "examples/s": f"{r['batch'] / med:,.0f}",
            "first call (compile)": _common.fmt_time(r["first_call_s"]),
        })
    note = (f"CPU, forced host devices sharing {os.cpu_count()} cores; 'vs 1 device' > 1 means faster. "
            "Virtual devices share the same cores, so this measures sharding overhead, not accelerator scaling.")
    path = _common.write_json("scaling", {"model": SIZES, "optimizer": "adam", "runs": runs, "table": rows,
                                          "note": note}, out=args.out, quick=args.quick)
    if rows:
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "|".join("---:" for _ in keys) + "|")
        for row in rows:
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    print(f"\n{note}\nwrote {path}")
    return 0


def main(argv=None) -> int:
    p = _common.arg_parser(__doc__.splitlines()[0], budget=600)
    p.add_argument("--devices", type=int, nargs="+", default=None, help="device counts (default 1 2 4 8)")
    p.add_argument("--batch", type=int, default=None, help="global batch size (default 256; 64 with --quick)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=7, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch, args.repeats, args.steps)))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
