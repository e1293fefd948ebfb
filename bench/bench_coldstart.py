"""Cold start: ``funcnet demo`` end to end, and the first-call compile time of ``fn.fit``.

Every figure comes from a fresh Python process (nothing imported, nothing
compiled, JAX's persistent compilation cache switched off with
``JAX_ENABLE_COMPILATION_CACHE=false``), repeated:

1. ``import``: ``python -c "import jax"`` and ``python -c "import funcnet"``; ``help``: ``python -c pass``,
   ``python -m funcnet --help`` and ``python -m funcnet <cmd> --help`` for every command, as ratios to
   ``python -c pass`` in the same run, and whether printing help imported JAX (target: it does not).
2. ``demo``: ``python -m funcnet demo --quiet --out <tmp>`` wall time, from process
   start to exit (target: under 60 s).
3. ``fit_first_call``: in a child process, after a trivial jitted op (so JAX's
   backend start-up is not counted), ``fn.fit`` on the MLP 784-512-512-10 with
   Adam, batch 128, 8 steps per epoch, 3 epochs. compile ≈ first epoch − median
   of the later epochs; setup = fit's wall time − Σ epoch times (data checks,
   optimizer probe, copies). The reference is a hand-written JAX epoch
   (``lax.scan``, same work) timed the same way in its own child process.

Run: ``python bench/bench_coldstart.py [--quick]``; writes ``<results>/coldstart.json``.
Full run ≈ 1-2 minutes (budget ``--budget``, default 240 s).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

FULL = {"repeats": 3, "demo_args": [], "sizes": (784, 512, 512, 10), "batch": 128, "steps": 8, "epochs": 3}
QUICK = {"repeats": 1, "demo_args": ["--quick"], "sizes": (64, 32, 10), "batch": 16, "steps": 4, "epochs": 3}
TARGET_DEMO_S = 60.0


def cold_env() -> dict:
    env = dict(os.environ)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.setdefault("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(C.REPO_ROOT), env["PYTHONPATH"]) if p)
    return env


def run_cold(args: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=cold_env(), cwd=C.REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return dt, proc


# --------------------------------------------------------------- child processes


def child(kind: str, sizes, batch: int, steps: int, epochs: int) -> dict:
    """Runs inside a fresh process; prints one JSON line."""
    t_import = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import optax

    import funcnet as fn

    t_import = time.perf_counter() - t_import
    jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros(1)))  # backend start-up, not counted
    model = fn.mlp(list(sizes), activation="relu")
    k_init, k_x, k_y, k_fit = jax.random.split(jax.random.key(0), 4)
    params = model.init(k_init)
    n = batch * steps
    X = jax.random.normal(k_x, (n, sizes[0]), jnp.float32)
    Y = jax.random.randint(k_y, (n,), 0, sizes[-1])
    opt = optax.adam(1e-3)
    jax.block_until_ready((params, X, Y))

    if kind == "fit":
        def loss_fn(p, b):
            return fn.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1])

        t0 = time.perf_counter()
        _, hist = fn.fit(loss_fn, params, (X, Y), optimizer=opt, epochs=epochs, batch_size=batch, key=k_fit,
                         progress=False)
        wall = time.perf_counter() - t0
        times = list(hist.epoch_time)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_train import make_raw_epoch, raw_loss_ce

        t0 = time.perf_counter()
        epoch = make_raw_epoch(raw_loss_ce, opt, n, batch)
        p, s = params, opt.init(params)
        times = []
        for e in range(epochs):
            t1 = time.perf_counter()
            p, s, loss = epoch(p, s, X, Y, jax.random.fold_in(k_fit, e))
            float(loss)
            times.append(time.perf_counter() - t1)
        wall = time.perf_counter() - t0
    steady = statistics.median(times[1:])
    return {"kind": kind, "import_s": t_import, "epoch_times": times, "wall_s": wall,
            "first_call_s": times[0], "compile_s": times[0] - steady, "setup_s": wall - sum(times)}


# ------------------------------------------------------------------------- help start-up

_COMMANDS = ("demo", "train", "visualize", "gradcheck", "graph")
_HELP_IMPORTS_JAX = (
    "import sys\n"
    "from funcnet.cli import main\n"
    "for argv in ([], *([c] for c in {cmds!r})):\n"
    "    try:\n"
    "        main([*argv, '--help'])\n"
    "    except SystemExit:\n"
    "        pass\n"
    "print('JAX-IMPORTED' if 'jax' in sys.modules else 'NO-JAX', file=sys.stderr)\n"
)


def help_startup(repeats: int) -> dict:
    """Wall time of ``python -c pass`` and of each ``funcnet [cmd] --help``; their ratio; JAX imported or not."""
    runs: dict[str, list[float]] = {"python -c pass": []}
    for _ in range(repeats):
        runs["python -c pass"].append(run_cold(["-c", "pass"], 60)[0])
        for cmd in ("", *_COMMANDS):
            label = f"funcnet {cmd} --help".replace("  ", " ")
            runs.setdefault(label, []).append(run_cold(["-m", "funcnet", *([cmd] if cmd else []), "--help"], 60)[0])
    _, proc = run_cold(["-c", _HELP_IMPORTS_JAX.format(cmds=_COMMANDS)], 60)
    base = statistics.median(runs["python -c pass"])
    return {"seconds": {k: C.summarize(v) for k, v in runs.items()},
            "ratio_to_python": {k: statistics.median(v) / base for k, v in runs.items()},
            "jax_imported": "JAX-IMPORTED" in proc.stderr}


# ------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = C.arg_parser(__doc__.splitlines()[0], budget=240)
    p.add_argument("--child", choices=("fit", "raw"), help=argparse_hidden())
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.child:
        print(json.dumps(child(args.child, cfg["sizes"], cfg["batch"], cfg["steps"], cfg["epochs"])))
        return 0

    deadline = C.Deadline(args.budget)
    skipped = []
    out = {"config": {**cfg, "sizes": list(cfg["sizes"])}}

    imports = {"jax": [], "funcnet": []}
    for _ in range(cfg["repeats"]):
        for mod in imports:
            imports[mod].append(run_cold(["-c", f"import {mod}"], 120)[0])
    out["import"] = {k: C.summarize(v) for k, v in imports.items()}
    print("cold import: " + ", ".join(f"{k} {C.fmt_time(v['median'])}" for k, v in out["import"].items()), flush=True)
    out["help"] = help_startup(cfg["repeats"])
    print("help start-up (x python -c pass): " + ", ".join(
        f"{k} {v:.1f}x" for k, v in out["help"]["ratio_to_python"].items()) + "; JAX imported: "
        + str(out["help"]["jax_imported"]), flush=True)

    demo, demo_reported, accuracy = [], [], []
    for i in range(cfg["repeats"]):
        if deadline.passed and demo:
            skipped.append(f"demo run {i + 1}: time budget spent")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            dt, _ = run_cold(["-m", "funcnet", "demo", "--quiet", "--out", tmp, *cfg["demo_args"]], 300)
            summary_path = Path(tmp) / "summary.json"
            if summary_path.exists():
                s = json.loads(summary_path.read_text())
                demo_reported.append(s.get("seconds"))
                accuracy.append(s.get("test_accuracy"))
        demo.append(dt)
        print(f"funcnet demo (cold process): {dt:.2f} s", flush=True)
    out["demo"] = {**C.summarize(demo), "reported_seconds": demo_reported, "test_accuracy": accuracy,
                   "command": "python -m funcnet demo --quiet --out <tmp> " + " ".join(cfg["demo_args"])}

    fc = {"fit": [], "raw": []}
    for i in range(cfg["repeats"]):
        if deadline.passed and fc["fit"]:
            skipped.append(f"fit first-call run {i + 1}: time budget spent")
            continue
        for kind in ("fit", "raw"):
            flags = ["--quick"] if args.quick else []
            _, proc = run_cold([str(Path(__file__).resolve()), "--child", kind, *flags], 300)
            fc[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first = {}
    for kind, runs in fc.items():
        first[kind] = {
            "runs": runs,
            "compile": C.summarize([r["compile_s"] for r in runs]),
            "first_call": C.summarize([r["first_call_s"] for r in runs]),
            "setup": C.summarize([r["setup_s"] for r in runs]),
            "steady_epoch": C.summarize([statistics.median(r["epoch_times"][1:]) for r in runs]),
        }
    out["fit_first_call"] = first
    fit_c, raw_c = first["fit"]["compile"]["median"], first["raw"]["compile"]["median"]
    print(f"first-call compile: fit {C.fmt_time(fit_c)}, hand-written epoch {C.fmt_time(raw_c)}", flush=True)

    sizes = "-".join(map(str, cfg["sizes"]))
    out["tables"] = {
        "Cold start (fresh processes, median of runs)": [
            {"what": "python -c 'import jax'", "median": C.fmt_time(out["import"]["jax"]["median"]),
             "min–max": f"{C.fmt_time(out['import']['jax']['min'])}–{C.fmt_time(out['import']['jax']['max'])}"},
            {"what": "python -c 'import funcnet'", "median": C.fmt_time(out["import"]["funcnet"]["median"]),
             "min–max": f"{C.fmt_time(out['import']['funcnet']['min'])}–{C.fmt_time(out['import']['funcnet']['max'])}"},
            *[{"what": f"{k} ({out['help']['ratio_to_python'][k]:.1f}x python -c pass)",
               "median": C.fmt_time(v["median"]), "min–max": f"{C.fmt_time(v['min'])}–{C.fmt_time(v['max'])}"}
              for k, v in out["help"]["seconds"].items()],
            {"what": "funcnet demo, end to end", "median": C.fmt_time(out["demo"]["median"]),
             "min–max": f"{C.fmt_time(out['demo']['min'])}–{C.fmt_time(out['demo']['max'])}"},
            *[{"what": f"{label}: {part} (MLP {sizes}, Adam, batch {cfg['batch']})",
               "median": C.fmt_time(first[kind][part]["median"]),
               "min–max": f"{C.fmt_time(first[kind][part]['min'])}–{C.fmt_time(first[kind][part]['max'])}"}
              for kind, label in (("fit", "fn.fit"), ("raw", "hand-written jit epoch"))
              for part in ("compile", "setup", "steady_epoch")],
        ]
    }
    worst = out["demo"]["max"]
    help_worst = max(v for k, v in out["help"]["ratio_to_python"].items() if k != "python -c pass")
    out["targets"] = [
        {"name": "funcnet --help and every funcnet <cmd> --help import no JAX", "target": False,
         "value": out["help"]["jax_imported"], "met": not out["help"]["jax_imported"],
         "note": f"slowest help {help_worst:.1f}x python -c pass (informational)"},
        {"name": f"funcnet demo from a cold process < {TARGET_DEMO_S:.0f} s", "target": TARGET_DEMO_S,
         "value": round(worst, 2), "met": None if args.quick else worst < TARGET_DEMO_S,
         "note": ("quick run (--quick), not judged; " if args.quick else "")
                 + f"slowest of {len(demo)} runs; median {out['demo']['median']:.2f} s"},
        {"name": "fit first-call compile vs hand-written epoch (informational)", "target": None,
         "value": round(fit_c / raw_c, 2) if raw_c > 0 else None, "met": None,
         "note": f"fit {C.fmt_time(fit_c)} vs raw {C.fmt_time(raw_c)}"},
    ]
    out["skipped"] = skipped
    out["elapsed_s"] = deadline.elapsed()
    path = C.write_json("coldstart", out, out=args.out, quick=args.quick)
    print(f"wrote {path} in {deadline.elapsed():.1f} s", flush=True)
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
