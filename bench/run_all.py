"""Run every ``bench/bench_*.py``, one fresh process each, and write the summary.

    python bench/run_all.py            # full run, ~10 minutes on 2 cores, hard cap 15
    python bench/run_all.py --quick    # smoke run: tiny sizes; results in bench/results/quick/
    python bench/run_all.py --only train coldstart

Each script runs as its own subprocess (so imports, compilation caches and
thread pools never leak from one into the next) with ``--quick`` passed through,
``$FUNCNET_BENCH_RESULTS`` pointing at the results folder, ``--out
<results>/<name>.json`` and a soft ``--budget`` (45 s under the hard timeout) where
the script has those options, and a hard timeout (``TIMEOUTS``). Then it collects ``<results>/<name>.json``, writes
``<results>/summary.json`` and ``<results>/summary.md``, and, on full runs,
rewrites the part of ``docs/performance.md`` between ``<!-- bench:begin -->`` and
``<!-- bench:end -->`` with the summary: the machine, every target met or missed,
and every script's tables.

A script that fails or times out is reported as such and the others still run;
the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
DOC = C.REPO_ROOT / "docs" / "performance.md"
# Hard timeouts in seconds (full run): 300 + 180 + 105 per other script (4 of them: 900 s, 15 minutes, at worst).
TIMEOUTS = {"train": 300, "coldstart": 180, "tracer": 200}
DEFAULT_TIMEOUT = 105
QUICK_TIMEOUT = 180
# Run first: the most load-sensitive measurements, on the quietest machine.
ORDER = ("train", "coldstart")


def discover(only: list[str] | None) -> list[tuple[str, Path]]:
    scripts = {p.stem[len("bench_"):]: p for p in sorted(C.BENCH_DIR.glob("bench_*.py"))}
    if only:
        missing = sorted(set(only) - set(scripts))
        if missing:
            raise SystemExit(f"no bench/bench_<name>.py for {missing}; found {sorted(scripts)}")
        scripts = {k: v for k, v in scripts.items() if k in only}
    names = [n for n in ORDER if n in scripts] + [n for n in scripts if n not in ORDER]
    return [(n, scripts[n]) for n in names]


def supported_flags(path: Path) -> set[str]:
    """Which of --quick/--out/--budget a script accepts (all three for scripts built on _common.arg_parser)."""
    text = path.read_text()
    if "arg_parser(" in text:
        return {"--quick", "--out", "--budget"}
    return {f for f in ("--quick", "--out", "--budget") if f'"{f}"' in text or f"'{f}'" in text}


def run_script(name: str, path: Path, *, quick: bool, results: Path, timeout: float) -> dict:
    flags = supported_flags(path)
    cmd = [sys.executable, str(path)]
    notes = []
    if quick:
        if "--quick" in flags:
            cmd.append("--quick")
        else:
            notes.append("no --quick option: ran at full size")
    if "--out" in flags:
        cmd += ["--out", str(results / f"{name}.json")]
    if "--budget" in flags:
        cmd += ["--budget", str(max(30, timeout - 45))]
    env = dict(os.environ)
    env["FUNCNET_BENCH_RESULTS"] = str(results)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(C.REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    start_wall = time.time()
    t0 = time.perf_counter()
    print(f"== {path.relative_to(C.REPO_ROOT)} (timeout {timeout:.0f} s)", flush=True)
    status, rc, stdout, stderr = "ok", None, "", ""
    try:
        proc = subprocess.run(cmd, cwd=C.REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        if rc != 0:
            status = f"failed (exit {rc})"
    except subprocess.TimeoutExpired as e:
        status = f"timed out after {timeout:.0f} s"
        stdout = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    seconds = time.perf_counter() - t0
    for line in stdout.strip().splitlines()[-12:]:
        print(f"   {line}", flush=True)
    # The script's JSON: in the results folder, or (scripts that ignore $FUNCNET_BENCH_RESULTS) bench/results.
    found = None
    for cand in (results / f"{name}.json", C.BENCH_DIR / "results" / f"{name}.json"):
        if cand.exists() and cand.stat().st_mtime >= start_wall - 1:
            found = cand
            break
    if found is None and status == "ok":
        status = f"no fresh {name}.json written"
    if notes and status == "ok":
        status = "ok (" + "; ".join(notes) + ")"
    print(f"   -> {status} in {seconds:.1f} s", flush=True)
    if not status.startswith("ok") and stderr:
        print("   " + "\n   ".join(stderr.strip().splitlines()[-15:]), flush=True)
    return {"name": name, "script": str(path.relative_to(C.REPO_ROOT)), "command": " ".join(cmd[1:]),
            "status": status, "returncode": rc, "seconds": seconds, "json": str(found) if found else None,
            "stderr_tail": stderr.strip().splitlines()[-20:] if not status.startswith("ok") else [],
            "stdout_markdown": stdout_markdown(stdout)}


def stdout_markdown(stdout: str) -> str | None:
    """The Markdown a script printed, when it printed a table (headings demoted to bold), else None."""
    lines = stdout.strip().splitlines()[-80:]
    if not any(l.lstrip().startswith("|") for l in lines):
        return None
    out = []
    for l in lines:
        if l.startswith("#"):
            l = f"**{l.lstrip('#').strip()}**"
        if l.startswith("wrote "):
            continue
        out.append(l)
    return "\n".join(out).strip() + "\n"


# ---------------------------------------------------------------------- markdown


def _cell(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    if isinstance(v, (list, dict)):
        v = json.dumps(v, ensure_ascii=False)
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(rows: list[dict]) -> str:
    if not rows:
        return "_(no rows)_\n"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _flatten(obj, prefix="", out=None, limit=25):
    """Scalar leaves of a JSON document as (path, value), for scripts that give no table."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("machine", "samples", "name", "quick", "load_average", "targets"):
                continue
            _flatten(v, f"{prefix}.{k}" if prefix else k, out, limit)
    elif isinstance(obj, list):
        if len(obj) <= 8:
            for i, v in enumerate(obj):
                _flatten(v, f"{prefix}[{i}]", out, limit)
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        out.append({"key": prefix, "value": obj})
    return out


def tables_of(doc: dict) -> dict[str, list[dict]]:
    if isinstance(doc.get("tables"), dict):
        return {str(k): v for k, v in doc["tables"].items() if isinstance(v, list)}
    if isinstance(doc.get("table"), list):
        return {"": doc["table"]}
    return {"(no table in the JSON; its scalar results)": _flatten(doc)}


def section(doc: dict, run: dict | None) -> list[str]:
    """Markdown for one script: its JSON tables, else the Markdown it printed, else its scalars."""
    if "tables" not in doc and "table" not in doc and run and run.get("stdout_markdown"):
        return [run["stdout_markdown"]]
    lines = []
    for title, rows in tables_of(doc).items():
        if title:
            lines += [f"**{title}**", ""]
        lines += [md_table(rows)]
    return lines


def verdict(met) -> str:
    return {True: "✅ met", False: "❌ missed"}.get(met, "— not judged")


def render(summary: dict) -> str:
    m = summary["machine"]
    avx512 = any(f.startswith("avx512") for f in m.get("cpu_flags", []))
    lines = [
        f"Results of `python bench/run_all.py{' --quick' if summary['quick'] else ''}`, {m['date']}"
        + (" — **quick smoke run: tiny sizes, not measurements**" if summary["quick"] else "") + ".",
        "",
        "**Machine.** "
        f"{m['cpu']} ({'AVX-512' if avx512 else 'no AVX-512'}), {m['cores']} cores ({m['cores_usable']} usable), "
        f"{m['memory_gib']} GiB; {m['os']}; Python {m['python']}; jax {m['jax']} / jaxlib {m['jaxlib']}, "
        f"optax {m['optax']}, numpy {m['numpy']}, torch {m['torch'] or 'not installed'}. "
        f"Load average at start: {summary['load_average_start']}, at end: {summary['load_average_end']}. "
        f"Total {summary['elapsed_s']:.0f} s.",
        "",
        "| script | status | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| `{s['script']}` | {s['status']} | {s['seconds']:.1f} |" for s in summary["scripts"]]
    lines += ["", "### Targets", ""]
    trows = [{"target": t.get("name"), "limit": t.get("target"), "measured": t.get("value"),
              "verdict": verdict(t.get("met")), "note": t.get("note", ""), "from": t.get("source")}
             for t in summary["targets"]]
    lines.append(md_table(trows) if trows else "_(no script reported targets)_\n")
    runs = {r["name"]: r for r in summary["scripts"]}
    for name, doc in summary["results"].items():
        lines += [f"### {name}", ""]
        lines += section(doc, runs.get(name))
    return "\n".join(lines).rstrip() + "\n"


def update_doc(markdown: str, doc: Path = DOC) -> bool:
    """Replace the text between the markers in ``doc``; False when the file or markers are missing."""
    if not doc.exists():
        return False
    text = doc.read_text()
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        return False
    doc.write_text(text[: i + len(BEGIN)] + "\n" + markdown + text[j:])
    return True


# -------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, results in bench/results/quick/")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only bench_<NAME>.py (e.g. train coldstart)")
    p.add_argument("--results", type=Path, default=None, help="results folder (default bench/results[/quick])")
    p.add_argument("--timeout", nargs="+", default=[], metavar="NAME=SECONDS",
                   help=f"hard timeout per script, e.g. inputs=180 (defaults: {TIMEOUTS}, others {DEFAULT_TIMEOUT})")
    p.add_argument("--docs", dest="docs", action="store_true", default=None,
                   help="update docs/performance.md (default: on for full runs, off for --quick)")
    p.add_argument("--no-docs", dest="docs", action="store_false", help="do not touch docs/performance.md")
    args = p.parse_args(argv)
    results = args.results or (C.BENCH_DIR / "results" / ("quick" if args.quick else ""))
    results.mkdir(parents=True, exist_ok=True)
    write_docs = (not args.quick) if args.docs is None else args.docs
    overrides = {}
    for item in args.timeout:
        name, _, secs = item.partition("=")
        try:
            overrides[name] = float(secs)
        except ValueError:
            p.error(f"--timeout wants NAME=SECONDS, e.g. inputs=180; got {item!r}")

    t0 = time.perf_counter()
    load_start = C.load_average()
    runs = []
    for name, path in discover(args.only):
        timeout = overrides.get(name) or (QUICK_TIMEOUT if args.quick else TIMEOUTS.get(name, DEFAULT_TIMEOUT))
        runs.append(run_script(name, path, quick=args.quick, results=results, timeout=timeout))

    docs, targets = {}, []
    for r in runs:
        if not r["json"]:
            continue
        try:
            doc = json.loads(Path(r["json"]).read_text())
        except (OSError, ValueError) as e:
            r["status"] = f"unreadable JSON ({e})"
            continue
        docs[r["name"]] = doc
        for t in doc.get("targets", []) or []:
            if isinstance(t, dict):
                targets.append({**t, "source": r["name"]})
    summary = {
        "quick": args.quick,
        "machine": C.machine_info(),
        "load_average_start": load_start,
        "load_average_end": C.load_average(),
        "elapsed_s": time.perf_counter() - t0,
        "scripts": runs,
        "targets": targets,
        "results": docs,
    }
    md = render(summary)
    C.write_json("summary", summary, out=results / "summary.json", quick=args.quick)
    (results / "summary.md").write_text(md)
    print(f"wrote {results / 'summary.json'} and {results / 'summary.md'}")
    if write_docs:
        if update_doc(md):
            print(f"updated {DOC.relative_to(C.REPO_ROOT)} between {BEGIN} and {END}")
        else:
            print(f"did not update {DOC}: file or markers {BEGIN} / {END} missing", file=sys.stderr)
    missed = [t["name"] for t in targets if t.get("met") is False]
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 1 if any(not r["status"].startswith("ok") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
