"""Benchmark: visualizing 10 units x 200 steps of a 784-512-512-10 MLP.

Compares, in one run and on the same problem (Adam on u, x = sigmoid(u), objective
z_L[j] - l2·‖x‖² - tv·TV(x), 28x28 inputs):

  funcnet        fn.inputs.visualize_units: all units in one compiled call (vmap over units, lax.scan over steps)
  vmap-in-jit    a hand-written jax.jit(jax.vmap(lax.scan(...))) of the same optimization
  loop-of-jit    a Python loop of 10 separate jitted optimizations (one unit each)
  torch-batched  PyTorch, the 10 inputs as one batch, 200 Python-level Adam steps
  funcnet, default recipe   visualize_units' defaults (Fourier space, transforms): the cost of the recipe
  matmul-only    the step's 4 matrix products alone, batched and as a loop of 10: the ceiling on the loop ratio

Targets: funcnet within 1.1x of vmap-in-jit; at least 3x faster than loop-of-jit and torch-batched.
Compile time is excluded (every variant is warmed up first). Prints a Markdown table and writes
bench/results/inputs.json.  Run:  python bench/bench_inputs.py [--repeats 25]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import funcnet as fn  # noqa: E402

SIZES = [784, 512, 512, 10]
SHAPE = (28, 28)
UNITS = 10
STEPS = 200
LR, L2, TV = 0.05, 1e-3, 0.05


def tv(x):
    return jnp.sum((x[1:] - x[:-1]) ** 2) + jnp.sum((x[:, 1:] - x[:, :-1]) ** 2)


def make_hand_written(params):
    """The same optimization written directly: jit(vmap(scan(adam step)))."""
    opt = optax.adam(LR)

    def logits(x):
        a = x.reshape(-1)
        for i, layer in enumerate(params):
            z = a @ layer["w"] + layer["b"]
            a = jax.nn.relu(z) if i < len(params) - 1 else z
        return a

    def objective(u, unit):
        x = jax.nn.sigmoid(u)
        return logits(x)[unit] - L2 * jnp.sum(x * x) - TV * tv(x)

    def optimize_one(unit, u0):
        def step(carry, _):
            u, s = carry
            g = jax.grad(objective)(u, unit)      # images only, as visualize_units returns by default
            upd, s = opt.update(-g, s, u)
            return (optax.apply_updates(u, upd), s), None

        (u, _), _ = jax.lax.scan(step, (u0, opt.init(u0)), None, length=STEPS)
        return jax.nn.sigmoid(u)

    batched = jax.jit(jax.vmap(optimize_one))
    single = jax.jit(optimize_one)
    return batched, single


def make_matmul_floor(params):
    """The 4 matrix products of one step (2 forward, 2 backward) and nothing else, as one scan of STEPS.

    Batched (10 rows, GEMM) against a loop of 10 single rows (GEMV): the ratio of the two is what the loop
    can lose to the batched call when every other operation costs nothing, i.e. the ceiling on
    loop-of-jit / funcnet on this machine. The transposed weights are materialized once, as funcnet does.
    """
    w1, w2 = params[0]["w"], params[1]["w"]
    w1t, w2t = jnp.asarray(np.asarray(w1).T.copy()), jnp.asarray(np.asarray(w2).T.copy())

    @jax.jit
    def chain(x):
        def step(c, _):
            g = ((c @ w1) @ w2) @ w2t
            return c + 1e-6 * (g @ w1t), None
        return jax.lax.scan(step, x, None, length=STEPS)[0]

    xs = jnp.ones((UNITS, SIZES[0]), jnp.float32)
    return (lambda: chain(xs).block_until_ready(),
            lambda: [chain(xs[i:i + 1]).block_until_ready() for i in range(UNITS)])


def make_torch(params, u0):
    import torch

    ws = [(torch.tensor(np.asarray(l["w"])), torch.tensor(np.asarray(l["b"]))) for l in params]
    units = torch.arange(UNITS)

    def run():
        u = torch.tensor(np.asarray(u0), requires_grad=True)
        opt = torch.optim.Adam([u], lr=LR)
        for _ in range(STEPS):
            opt.zero_grad(set_to_none=True)
            x = torch.sigmoid(u)
            a = x.reshape(UNITS, -1)
            for i, (w, b) in enumerate(ws):
                z = a @ w + b
                a = torch.relu(z) if i < len(ws) - 1 else z
            obj = a[torch.arange(UNITS), units] - L2 * (x * x).sum((1, 2)) \
                - TV * (((x[:, 1:] - x[:, :-1]) ** 2).sum((1, 2)) + ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum((1, 2)))
            (-obj.sum()).backward()
            opt.step()
        return torch.sigmoid(u).detach().numpy()

    return run, torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--quick", action="store_true", help="3 repeats (smoke run)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "inputs.json"))
    args = ap.parse_args()
    if args.quick:
        args.repeats = 3

    model = fn.mlp(SIZES, activation="relu")
    params = model.init(jax.random.key(0))
    key = jax.random.key(1)
    units = jnp.arange(UNITS)
    # funcnet's noise start, reproduced for the others: u0 = 0.01·N(0, 1) from the key's first half.
    u0 = 0.01 * jax.random.normal(jax.random.split(key)[0], (UNITS, *SHAPE))
    kw = dict(units=range(UNITS), layer=-1, key=key, steps=STEPS, learning_rate=LR, objective="logit", l2=L2,
              tv=TV, input_shape=SHAPE, value_range=(0.0, 1.0), space="pixel", jitter=0, scale=0, rotate=0)
    # The default recipe (Fourier space 1/f², margin, random shift/zoom/rotation, L2): its cost over the plain one.
    recipe = dict(units=range(UNITS), key=key, steps=STEPS, input_shape=SHAPE, value_range=(0.0, 1.0))
    batched, single = make_hand_written(params)

    variants = {
        "funcnet": lambda: fn.inputs.visualize_units(model, params, **kw).block_until_ready(),
        "vmap-in-jit": lambda: batched(units, u0).block_until_ready(),
        "loop-of-jit": lambda: [single(units[i], u0[i]).block_until_ready() for i in range(UNITS)],
        "funcnet, default recipe": lambda: fn.inputs.visualize_units(model, params, **recipe).block_until_ready(),
    }
    floor_batched, floor_loop = make_matmul_floor(params)
    variants["matmul-only, batched"] = floor_batched
    variants["matmul-only, loop"] = floor_loop
    try:
        torch_run, torch = make_torch(params, u0)
        variants["torch-batched"] = torch_run
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_info = "torch not installed (pip install torch==2.13.0)"

    # Same answers before timing anything.
    ours = np.asarray(variants["funcnet"]())
    hand = np.asarray(variants["vmap-in-jit"]())
    loop = np.stack([np.asarray(x) for x in variants["loop-of-jit"]()])
    check = {"funcnet_vs_vmap_max_abs_diff": float(np.abs(ours - hand).max()),
             "funcnet_vs_loop_max_abs_diff": float(np.abs(ours - loop.reshape(ours.shape)).max())}
    if "torch-batched" in variants:
        check["funcnet_vs_torch_max_abs_diff"] = float(np.abs(ours - variants["torch-batched"]()).max())

    # Interleave the variants over the repeats (shuffled per round) so that load hits all of them alike.
    times = {name: [] for name in variants}
    for f in variants.values():
        f()
    for name in C.rounds(variants, args.repeats):
        t = time.perf_counter()
        variants[name]()
        times[name].append(time.perf_counter() - t)

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name, ts in times.items():
        q = np.percentile(ts, [25, 75])
        rows.append({"variant": name, "median_ms": 1e3 * med[name], "iqr_ms": [1e3 * q[0], 1e3 * q[1]],
                     "min_ms": 1e3 * min(ts), "max_ms": 1e3 * max(ts), "vs_funcnet": med[name] / med["funcnet"]})
    ratios = {
        "funcnet_over_vmap_in_jit": med["funcnet"] / med["vmap-in-jit"],
        "loop_of_jit_over_funcnet": med["loop-of-jit"] / med["funcnet"],
    }
    ratios["default_recipe_over_plain"] = med["funcnet, default recipe"] / med["funcnet"]
    ratios["matmul_floor_loop_over_batched"] = med["matmul-only, loop"] / med["matmul-only, batched"]
    if "torch-batched" in med:
        ratios["torch_batched_over_funcnet"] = med["torch-batched"] / med["funcnet"]
    # the targets in run_all.py's common format (its summary lists them)
    r_vmap, r_loop = ratios["funcnet_over_vmap_in_jit"], ratios["loop_of_jit_over_funcnet"]
    targets = [
        C.target("visualize_units / hand-written vmap-in-jit", "<=1.1x", r_vmap, r_vmap <= 1.1,
                 f"same-run interleaved medians, {args.repeats} rounds"),
        C.target("loop of 10 jitted optimizations / visualize_units", ">=3x", r_loop, r_loop >= 3.0,
                 f"ceiling from the matrix products alone {ratios['matmul_floor_loop_over_batched']:.2f}x"),
    ]
    if "torch_batched_over_funcnet" in ratios:
        r_torch = ratios["torch_batched_over_funcnet"]
        targets.append(C.target("PyTorch batched / visualize_units", ">=3x", r_torch, r_torch >= 3.0, torch_info))

    print(f"## Visualizing {UNITS} units x {STEPS} steps, MLP {SIZES}, inputs {SHAPE}\n")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {torch_info}; {os.cpu_count()} CPUs; "
          f"{args.repeats} repeats, interleaved\n")
    print("| variant | median (ms) | IQR (ms) | min-max (ms) | time / funcnet |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['median_ms']:.1f} | {r['iqr_ms'][0]:.1f}-{r['iqr_ms'][1]:.1f} | "
              f"{r['min_ms']:.1f}-{r['max_ms']:.1f} | {r['vs_funcnet']:.2f}x |")
    print()
    for t in targets:
        print(f"- {t['name']} {t['target']}: {t['value']:.2f}x, {'met' if t['met'] else 'NOT met'}")
    print(f"- ceiling on loop-of-jit / funcnet from the matrix products alone: "
          f"{ratios['matmul_floor_loop_over_batched']:.2f}x")
    print(f"- same answers: {', '.join(f'{k} = {v:.1e}' for k, v in check.items())}")

    result = {"problem": {"sizes": SIZES, "input_shape": SHAPE, "units": UNITS, "steps": STEPS, "lr": LR,
                          "l2": L2, "tv": TV},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                          "device": str(jax.devices()[0]), "torch": torch_info},
              "repeats": args.repeats, "rows": rows, "ratios": ratios, "targets": targets, "check": check}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
