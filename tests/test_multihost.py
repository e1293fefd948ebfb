"""Two "hosts" on one machine: ``jax.distributed`` over 127.0.0.1 with gloo CPU collectives.

Each of two processes (2 CPU devices each, so a 4-device mesh spanning both) runs
``tests/_multihost_worker.py``: it calls ``funcnet.sharding.initialize_distributed``, feeds its own half of
every global batch (``global_batch_from_local``) and trains 5 Adam steps. Both must end with the
parameters of a plain single-device run on the whole batches (this process, one device).

Tolerance: float32, rtol=1e-5 and atol=1e-6 on every parameter and loss; the only difference allowed is
the order of the gradient summation across the 4 shards.

Everything runs under a hard timeout (``TIMEOUT`` s per attempt); a port taken between choosing and binding
it is retried once with a new port, so the test cannot hang CI.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT = 120
RTOL, ATOL = 1e-5, 1e-6


def _worker_module():
    spec = importlib.util.spec_from_file_location("_multihost_worker", HERE / "_multihost_worker.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, attempt: int) -> tuple[list[int], list[str], list[Path]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    outs = [tmp_path / f"attempt{attempt}_proc{i}.npz" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_multihost_worker.py"), "--port", str(port), "--process-id", str(i),
             "--num-processes", "2", "--local-devices", "2", "--out", str(outs[i])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    logs, codes = [], []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT)
            logs.append(out)
            codes.append(p.returncode)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        for p in procs:
            p.communicate()
        pytest.fail(f"the two-process run did not finish within {TIMEOUT} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return codes, logs, outs


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multihost")
    for attempt in range(2):
        codes, logs, outs = _launch(tmp, attempt)
        if codes == [0, 0]:
            return [dict(np.load(o)) for o in outs]
    joined = "\n".join(f"--- process {i} (exit {c}) ---\n{log[-3000:]}" for i, (c, log) in enumerate(zip(codes, logs)))
    pytest.fail(f"two-process run failed twice:\n{joined}")


@pytest.fixture(scope="module")
def single_process_reference():
    """The same 5 steps on one device with whole global batches: plain jax.jit, no sharding."""
    w = _worker_module()
    _, params, batches, optimizer, loss_fn = w.problem()
    step = jax.jit(w.make_step(loss_fn, optimizer))
    opt_state = optimizer.init(params)
    losses = []
    for batch in batches:
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(float(loss))
    flat = {f"{i}_{k}": np.asarray(v) for i, layer in enumerate(params) for k, v in layer.items()}
    return flat, np.asarray(losses)


@pytest.mark.slow
def test_each_process_fed_its_own_half(two_process_run):
    w = _worker_module()
    half = w.GLOBAL_BATCH // 2
    assert [r["rows"].tolist() for r in two_process_run] == [[0, half], [half, 2 * half]]


@pytest.mark.slow
@pytest.mark.parametrize("proc", [0, 1])
def test_two_processes_match_single_process(two_process_run, single_process_reference, proc):
    ref_params, ref_losses = single_process_reference
    got = two_process_run[proc]
    np.testing.assert_allclose(got["losses"], ref_losses, rtol=RTOL, atol=ATOL)
    assert set(ref_params) <= set(got)
    for name, ref in ref_params.items():
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)
    # and training moved the parameters: the comparison is not between two copies of the start
    _, params0, *_ = _worker_module().problem()
    assert np.max(np.abs(ref_params["0_w"] - np.asarray(params0[0]["w"]))) > 1e-3


@pytest.mark.slow
def test_processes_agree_with_each_other(two_process_run):
    a, b = two_process_run
    for name in a:
        if name != "rows":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # replicated: bit-identical copies
