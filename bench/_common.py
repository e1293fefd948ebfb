"""Shared helpers for the ``bench/`` scripts: timing, machine facts, JSON output.

Any ``bench/bench_*.py`` may use this module (``import _common`` works because a
script's own folder is on ``sys.path``); none has to. What ``bench/run_all.py``
expects from a script is only this:

* ``python bench/bench_<name>.py [--quick]`` runs it and writes
  ``<results>/<name>.json``, where ``<results>`` is ``$FUNCNET_BENCH_RESULTS`` when
  set (``run_all.py`` sets it) and ``bench/results`` otherwise;
* optionally, the JSON carries two keys that ``run_all.py`` renders in the summary
  (everything else is kept as is):

  - ``"table"``: a list of flat row dicts (one Markdown table row each);
  - ``"targets"``: a list of ``{"name", "target", "value", "met", "note"}`` dicts,
    ``met`` true/false/null (null: not measured in this run).

Timing rules (see ``docs/performance.md``): wall-clock ``time.perf_counter``; JAX
results are synchronised with ``jax.block_until_ready`` before the clock stops;
every figure is the median of repeated samples taken after warm-up, reported with
its interquartile range and min/max. Comparisons are ratios against references
measured in the same process, interleaved (every candidate once per round, in a
seeded shuffled order) so that drift in the machine's load hits every column alike.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


# ----------------------------------------------------------------------- timing


def block(tree: Any) -> Any:
    """Wait for JAX arrays in ``tree`` (no-op when JAX is not loaded); returns ``tree``."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.block_until_ready(tree)
    return tree


def summarize(samples: list[float], per: float = 1.0) -> dict:
    """Median, quartiles, IQR, min, max and the raw samples of ``samples / per`` (seconds)."""
    xs = sorted(s / per for s in samples)
    if not xs:
        raise ValueError("summarize needs at least one sample")
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {
        "median": statistics.median(xs),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": xs[0],
        "max": xs[-1],
        "n": len(xs),
        "samples": [s / per for s in samples],
    }


def time_once(fn: Callable[[], Any], sync: Callable[[Any], Any] = block) -> float:
    """Seconds for one call of ``fn()``, its result synchronised with ``sync``."""
    t0 = time.perf_counter()
    sync(fn())
    return time.perf_counter() - t0


def time_fn(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1, per: float = 1.0,
            sync: Callable[[Any], Any] = block) -> dict:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls; :func:`summarize` of time/``per``."""
    for _ in range(warmup):
        sync(fn())
    return summarize([time_once(fn, sync) for _ in range(repeats)], per)


def rounds(names, repeats: int, seed: int = 0):
    """The order of an interleaved measurement: ``repeats`` rounds, each every name once, shuffled per round.

    Round-robin makes load drift hit every candidate alike; shuffling each round (seeded, so a run is
    reproducible) also keeps any candidate from always following the same other one, whose after-effects
    (thread pools still spinning, caches it evicted) would otherwise fall on that candidate alone.
    """
    order = list(names)
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        yield from order


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1,
                     per: float | Mapping[str, float] = 1.0, sync: Callable[[Any], Any] = block) -> dict:
    """Time several candidates interleaved: ``repeats`` rounds, each candidate once per round (see :func:`rounds`).

    Returns ``name -> summarize(...)``. ``per`` divides each sample (e.g. steps per
    call) and may differ per name.
    """
    pers = per if isinstance(per, Mapping) else {k: per for k in fns}
    for _ in range(warmup):
        for f in fns.values():
            sync(f())
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for k in rounds(fns, repeats):
        samples[k].append(time_once(fns[k], sync))
    return {k: summarize(v, pers[k]) for k, v in samples.items()}


def ratio(a: Mapping | float, b: Mapping | float) -> float:
    """Ratio of two medians (accepts :func:`summarize` dicts or numbers)."""
    ma = a["median"] if isinstance(a, Mapping) else a
    mb = b["median"] if isinstance(b, Mapping) else b
    return ma / mb if mb else math.inf


def paired_ratio(a: Mapping, b: Mapping) -> float:
    """Median over rounds of ``a``'s sample divided by ``b``'s sample of the same round.

    ``a`` and ``b`` come from one :func:`time_interleaved` call, whose samples are kept in round order.
    The two samples of a round are taken within a second of each other, so a change of the machine's
    speed during the run (a shared 2-core guest can drop to half speed for minutes) hits both; the ratio
    of the two medians does not have that protection: when a slow phase covers about half the rounds,
    one candidate's median can fall inside it and the other's outside.
    """
    xs, ys = a["samples"], b["samples"]
    if not xs or len(xs) != len(ys):
        raise ValueError(f"paired_ratio needs the same number of rounds on both sides, got {len(xs)} and {len(ys)}")
    return statistics.median(x / y for x, y in zip(xs, ys))


def target(name: str, limit: str, value, met: bool | None, note: str = "") -> dict:
    """One target in the common format that ``run_all.py``'s summary table reads."""
    return {"name": name, "target": limit, "value": value, "met": met, "note": note}


class Deadline:
    """A soft time budget for a script: ``left()`` seconds remain, ``passed`` once spent."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return math.inf if self.seconds is None else self.seconds - self.elapsed()

    @property
    def passed(self) -> bool:
        return self.left() <= 0


# ---------------------------------------------------------------- machine facts


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that matter for GEMM speed (AVX2, AVX-512 family, FMA, AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info() -> dict:
    """CPU, cores, memory, OS, Python and library versions, date (without importing the libraries)."""
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_gib": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "funcnet": _version("funcnet"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (a quiet machine shows well under its core count)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------- arguments


def arg_parser(description: str, *, budget: float) -> argparse.ArgumentParser:
    """The common command line: ``--quick``, ``--out PATH``, ``--budget SECONDS``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1-2 repeats: a smoke run in seconds")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default: <results>/<name>.json)")
    p.add_argument("--budget", type=float, default=budget,
                   help=f"soft time budget in seconds; sections left when it is spent are skipped (default {budget:g})")
    return p


# ------------------------------------------------------------------------ output


def results_dir() -> Path:
    """Where results go: ``$FUNCNET_BENCH_RESULTS`` or ``bench/results``."""
    return Path(os.environ.get("FUNCNET_BENCH_RESULTS") or BENCH_DIR / "results")


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists, NumPy scalars Python numbers."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_json(name: str, payload: Mapping, *, out: Path | None = None, quick: bool = False) -> Path:
    """Write ``payload`` plus machine facts to ``out`` (default ``<results>/<name>.json``), atomically."""
    path = Path(out) if out is not None else results_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": name, "quick": quick, "machine": machine_info(), "load_average": load_average(), **payload}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(doc), f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def fmt_time(seconds: float | None) -> str:
    """A duration with a unit that keeps 3 significant figures: µs, ms or s."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"
