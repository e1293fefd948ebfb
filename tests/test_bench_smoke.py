"""The benchmark scripts run and write well-formed JSON. No timing is asserted: times only have to be real numbers."""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _run(args, tmp_path, timeout=600):
    env = dict(os.environ, FUNCNET_BENCH_RESULTS=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _positive_finite(t):
    return isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0


@pytest.mark.slow
def test_bench_train_quick_writes_expected_json(tmp_path):
    out = tmp_path / "train.json"
    _run([str(BENCH / "bench_train.py"), "--quick", "--out", str(out)], tmp_path)
    doc = json.loads(out.read_text())

    for key in ("machine", "gemm", "train", "overhead", "targets", "tables", "compiled_cost", "torch", "flop_count"):
        assert key in doc, f"missing {key!r}; keys: {sorted(doc)}"
    assert doc["quick"] is True
    assert doc["machine"]["cpu"] and doc["machine"]["cores"] >= 1
    assert _positive_finite(doc["gemm"]["gflops"])

    torch_ok = doc["torch"] == "ok"
    if not torch_ok:
        assert doc["torch"].startswith("torch not installed")
    expected = {"raw_jit", "raw_scan", "make_train_step", "fit"} | ({"torch"} if torch_ok else set())
    assert doc["train"], "no training configuration ran"
    for section in [*doc["train"], doc["overhead"]]:
        times = section["times"]
        assert expected <= set(times), f"columns {sorted(times)} lack {sorted(expected - set(times))}"
        for name in expected:
            t = times[name]
            assert all(_positive_finite(t[k]) for k in ("median", "min", "max")), (name, t)
            assert t["min"] <= t["median"] <= t["max"], (name, t)
        if not torch_ok:
            assert times["torch"]["skipped"].startswith("torch not installed")

    # the exact matmul FLOP count: 2·B·(3·Σ n_in·n_out − n_0·n_1)
    sizes = doc["config"]["sizes"]
    s = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    for cfg in doc["train"]:
        assert cfg["matmul_flops"] == 2 * cfg["batch"] * (3 * s - sizes[0] * sizes[1])

    for t in doc["targets"]:
        assert {"name", "target", "value", "met", "note"} <= set(t)
        assert t["met"] is None  # a quick run judges nothing


def test_flop_count_and_summary_helpers():
    sys.path.insert(0, str(BENCH))
    try:
        import _common
        import bench_train
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    # MLP 784-512-512-10 at batch 1024: 2·1024·(3·668672 − 401408) = 3 286 237 184
    assert bench_train.matmul_flops((784, 512, 512, 10), 1024) == 3_286_237_184
    summary = _common.summarize([3.0, 1.0, 2.0, 4.0], per=2.0)
    assert summary["median"] == pytest.approx(1.25, abs=1e-12)
    assert (summary["min"], summary["max"]) == (0.5, 2.0)
    assert run_all.md_table([{"a": 1, "b": None}, {"a": 2.5, "c": True}]).splitlines() == [
        "| a | b | c |", "|---|---|---|", "| 1 | — | — |", "| 2.5 | — | yes |",
    ]


def test_paired_ratio_is_not_tipped_by_a_slow_phase():
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    # a is 1.05x b in every round; the machine runs at half speed from the middle of round 2 (a, measured
    # after b in that round, is already slow) until round 4: the medians are 2.1 vs 1.0, the rounds say 1.05
    b = [1.0, 1.0, 1.0, 2.0, 2.0]
    a = [1.05, 1.05, 2.1, 2.1, 2.1]
    sa, sb = _common.summarize(a), _common.summarize(b)
    assert _common.ratio(sa, sb) == pytest.approx(2.1, rel=1e-12)
    assert _common.paired_ratio(sa, sb) == pytest.approx(1.05, rel=1e-12)
    with pytest.raises(ValueError, match="same number of rounds"):
        _common.paired_ratio(sa, _common.summarize(b[:4]))


def test_update_doc_replaces_only_between_markers(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    doc = tmp_path / "performance.md"
    doc.write_text(f"intro\n{run_all.BEGIN}\nold table\n{run_all.END}\noutro\n")
    assert run_all.update_doc("new table\n", doc)
    assert doc.read_text() == f"intro\n{run_all.BEGIN}\nnew table\n{run_all.END}\noutro\n"
    (tmp_path / "plain.md").write_text("no markers\n")
    assert not run_all.update_doc("x", tmp_path / "plain.md")
