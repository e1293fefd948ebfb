"""A catalogue of bad command lines: every flag of every command with a bad value.

Each must end in argparse's convention — exit status 2, ``funcnet CMD: error: argument FLAG: ...`` on stderr,
the flag's name in the message, no traceback — and before any work (the output folder is not even created).
Runtime failures end in one line on stderr and exit status 1. In-process (``funcnet.cli.main``) for speed.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import funcnet as fn
from funcnet.cli import _common, main

_DEEP = "exp(" * 60 + "x" + ")" * 60
_LONG = "x" + " + x" * 600


def _model_file(path, widths, data="digits", **overrides):
    params = [{"w": np.zeros((a, b), np.float32), "b": np.zeros(b, np.float32)} for a, b in zip(widths, widths[1:])]
    tree = {"kind": "funcnet-mlp", "params": params, "sizes": list(widths), "activation": "relu", "data": data,
            "seed": 0, **overrides}
    fn.save(path, tree)
    return str(path)


def _files(tmp):
    """Bad inputs on disk, made once per test."""
    (tmp / "a_file").write_text("not a folder")
    (tmp / "random.npz").write_bytes(bytes(range(256)) * 8)
    good = fn.save(tmp / "good.npz", {"w": np.zeros(3)})
    (tmp / "truncated.npz").write_bytes(pathlib.Path(good).read_bytes()[:40])
    np.savez(tmp / "plain.npz", w=np.zeros(3))
    return {
        "FILE": str(tmp / "a_file"), "UNDER_FILE": str(tmp / "a_file" / "sub"),
        "MISSING": str(tmp / "missing.npz"), "RANDOM": str(tmp / "random.npz"),
        "TRUNCATED": str(tmp / "truncated.npz"), "PLAIN": str(tmp / "plain.npz"), "NOT_MODEL": good,
        "MOONS": _model_file(tmp / "moons.npz", [2, 8, 2], data="moons"),
        "DIGITS": _model_file(tmp / "digits.npz", [64, 8, 10]),
        "WRONG_SHAPE": _model_file(tmp / "wrong.npz", [64, 8, 10], sizes=[64, 9, 10]),
        "BAD_ACT": _model_file(tmp / "badact.npz", [64, 8, 10], activation="os.system"),
    }


# (argv, the words after "argument "), one row per bad value. OUT is the output folder the test passes.
CASES = [
    # train
    (["train", "--data", "mnist"], "--data: invalid choice: 'mnist'"),
    (["train", "--hidden", "0"], "--hidden: every width must be >= 1"),
    (["train", "--hidden", "64,x"], "--hidden: expected comma-separated positive integers"),
    (["train", "--activation", "bogus"], "--activation: invalid choice: 'bogus'"),
    (["train", "--optimizer", "lbfgs"], "--optimizer: invalid choice"),
    (["train", "--lr", "nan"], "--lr: must be a finite number, got 'nan'"),
    (["train", "--lr", "inf"], "--lr: must be a finite number"),
    (["train", "--lr", "-1"], "--lr: must be > 0, got -1"),
    (["train", "--lr", "0"], "--lr: must be > 0, got 0"),
    (["train", "--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["train", "--momentum", "1.5"], "--momentum: must be < 1, got 1.5"),
    (["train", "--momentum", "-0.1"], "--momentum: must be >= 0"),
    (["train", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
    (["train", "--epochs", "-1"], "--epochs: must be >= 1, got -1"),
    (["train", "--epochs", "2.5"], "--epochs: expected an integer >= 1, got '2.5'"),
    (["train", "--batch-size", "-5"], "--batch-size: must be >= 0, got -5"),
    (["train", "--patience", "0"], "--patience: must be >= 1, got 0"),
    (["train", "--seed", "-1"], "--seed: must be >= 0, got -1"),
    (["train", "--out", "FILE"], "--out: "),
    (["train", "--out", "UNDER_FILE"], "--out: cannot write to"),
    (["train", "--quiet=1"], "--quiet: ignored explicit argument '1'"),
    # visualize
    (["visualize", "--params", "MISSING"], "--params: no such file"),
    (["visualize", "--params", "RANDOM"], "--params: "),
    (["visualize", "--params", "TRUNCATED"], "--params: "),
    (["visualize", "--params", "PLAIN"], "--params: "),
    (["visualize", "--params", "NOT_MODEL"], "--params: "),
    (["visualize", "--params", "MOONS"], "--params: "),
    (["visualize", "--params", "WRONG_SHAPE"], "--params: "),
    (["visualize", "--params", "BAD_ACT"], "--params: "),
    (["visualize", "--params", "DIGITS", "--layer", "1"], "--layer: 1 is not a hidden layer of the 64-8-10 MLP"),
    (["visualize", "--layer", "1"], "--layer: 1 is not a hidden layer of the 64-64-10 MLP"),
    (["visualize", "--layer", "-1"], "--layer: -1 is not a hidden layer"),
    (["visualize", "--layer", "x"], "--layer: invalid int value"),
    (["visualize", "--hidden", "0"], "--hidden: must be >= 1"),
    (["visualize", "--epochs", "0"], "--epochs: must be >= 1"),
    (["visualize", "--hidden-units", "0"], "--hidden-units: must be >= 1"),
    (["visualize", "--objective", "bogus"], "--objective: invalid choice"),
    (["visualize", "--steps", "0"], "--steps: must be >= 1"),
    (["visualize", "--lr", "nan"], "--lr: must be a finite number"),
    (["visualize", "--lr", "0"], "--lr: must be > 0"),
    (["visualize", "--l2", "-1"], "--l2: must be >= 0, got -1"),
    (["visualize", "--tv", "-1"], "--tv: must be >= 0, got -1"),
    (["visualize", "--tv", "inf"], "--tv: must be a finite number"),
    (["visualize", "--jitter", "-1"], "--jitter: must be >= 0, got -1"),
    (["visualize", "--jitter", "7.5"], "--jitter: must be at most 7 on 8x8 digits, got 7.5"),
    (["visualize", "--jitter", "nan"], "--jitter: must be a finite number"),
    (["visualize", "--scale", "-0.1"], "--scale: must be >= 0, got -0.1"),
    (["visualize", "--scale", "1"], "--scale: must be < 1, got 1"),
    (["visualize", "--scale", "big"], "--scale: expected a number, got 'big'"),
    (["visualize", "--rotate", "-5"], "--rotate: must be >= 0, got -5"),
    (["visualize", "--rotate", "181"], "--rotate: must be at most 180 degrees, got 181"),
    (["visualize", "--rotate", "inf"], "--rotate: must be a finite number"),
    (["visualize", "--seed", "x"], "--seed: expected an integer >= 0"),
    (["visualize", "--out", "FILE"], "--out: "),
    (["visualize", "--quiet=1"], "--quiet: ignored explicit argument"),
    # gradcheck
    (["gradcheck", "--sizes", "3"], "--sizes: needs at least two widths"),
    (["gradcheck", "--sizes", "0", "3"], "--sizes: must be >= 1, got 0"),
    (["gradcheck", "--sizes", "a"], "--sizes: expected an integer >= 1"),
    (["gradcheck", "--activation", "bogus"], "--activation: invalid choice"),
    (["gradcheck", "--output-activation", "bogus"], "--output-activation: invalid choice"),
    (["gradcheck", "--loss", "hinge"], "--loss: invalid choice"),
    (["gradcheck", "--loss", "softmax_cross_entropy", "--sizes", "3", "1"], "--sizes: softmax_cross_entropy needs"),
    (["gradcheck", "--batch", "0"], "--batch: must be >= 1"),
    (["gradcheck", "--init", "bogus"], "--init: invalid choice: 'bogus'"),
    (["gradcheck", "--methods", "jax"], "--methods: needs two or more different methods"),
    (["gradcheck", "--methods", "jax", "jax"], "--methods: needs two or more different methods"),
    (["gradcheck", "--methods", "magic"], "--methods: invalid choice"),
    (["gradcheck", "--eps", "0"], "--eps: must be > 0"),
    (["gradcheck", "--eps", "nan"], "--eps: must be a finite number"),
    (["gradcheck", "--seed", "-3"], "--seed: must be >= 0"),
    (["gradcheck", "--out", "FILE"], "--out: "),
    # graph
    (["graph", _LONG, "--var", "x=1"], "expr: is 2401 characters long; at most 2000"),
    (["graph", "+".join(["x"] * 300), "--var", "x=1"], "expr: has 599 syntax nodes; at most 500"),
    (["graph", _DEEP, "--var", "x=1"], "expr: is nested deeper than 50 levels"),
    (["graph", "--var", "x=1", "--", "-" * 400 + "x"], "expr: is nested deeper than 50 levels"),
    (["graph", "exp(x, x)", "--var", "x=1"], "expr: exp takes 1 positional argument"),
    (["graph", "maximum(x)", "--var", "x=1"], "expr: maximum takes 2 positional arguments"),
    (["graph", "exp(*x)", "--var", "x=1"], "expr: exp takes 1 positional argument"),
    (["graph", "exp(x=1)", "--var", "x=1"], "expr: exp takes 1 positional argument"),
    (["graph", "open(x)", "--var", "x=1"], "expr: unknown function 'open'"),
    (["graph", "x.real", "--var", "x=1"], "expr: unsupported syntax"),
    (["graph", "lambda: x", "--var", "x=1"], "expr: unsupported syntax"),
    (["graph", "'a' * x", "--var", "x=1"], "expr: unsupported constant"),
    (["graph", "x % 2", "--var", "x=1"], "expr: unsupported operator"),
    (["graph", "exp = x; exp", "--var", "x=1"], "expr: 'exp' is a function name"),
    (["graph", "import os", "--var", "x=1"], "expr: only 'name = expression' parts"),
    (["graph", "x + y", "--var", "x=1"], "expr: unknown name 'y'"),
    (["graph", "x"], "--var: give at least one variable"),
    (["graph", "x", "--var", "x=inf"], "--var: the value of x must be finite"),
    (["graph", "x", "--var", "x=nan"], "--var: the value of x must be finite"),
    (["graph", "x", "--var", "exp=1"], "--var: 'exp' is a function name"),
    (["graph", "x", "--var", "1x=1"], "--var: expected NAME=VALUE"),
    (["graph", "x", "--var", "x=1", "--name", "../x"], "--name: must be a plain file name inside --out"),
    (["graph", "x", "--var", "x=1", "--name", "a/b"], "--name: must be a plain file name"),
    (["graph", "x", "--var", "x=1", "--name", ""], "--name: must be a plain file name"),
    (["graph", "x", "--var", "x=1", "--name", ".hidden"], "--name: must be a plain file name"),
    (["graph", "x", "--var", "x=1", "--out", "UNDER_FILE"], "--out: cannot write to"),
    # demo
    (["demo", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
    (["demo", "--hidden", "-4"], "--hidden: must be >= 1, got -4"),
    (["demo", "--steps", "0"], "--steps: must be >= 1, got 0"),
    (["demo", "--seed", "-1"], "--seed: must be >= 0"),
    (["demo", "--out", "FILE"], "--out: "),
    (["demo", "--quick=yes"], "--quick: ignored explicit argument"),
    (["demo", "--quiet=yes"], "--quiet: ignored explicit argument"),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_flag_is_a_usage_error_before_any_work(argv, words, tmp_path, capsys):
    files = _files(tmp_path)
    out = tmp_path / "out"
    argv = [files.get(a, a) for a in argv]
    if "--out" not in argv:
        at = argv.index("--") if "--" in argv else len(argv)
        argv[at:at] = ["--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert exc.value.code == 2
    assert f"funcnet {argv[0]}: error: argument {words}" in err, err
    assert "Traceback" not in err and captured.out == ""
    assert len(err.strip().splitlines()[-1]) > len(f"funcnet {argv[0]}: error: argument ")  # says what was wrong
    assert not out.exists()  # nothing was done, not even the output folder


def test_every_flag_of_every_command_is_in_the_catalogue():
    import argparse

    from funcnet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    covered = {(argv[0], word) for argv, _ in CASES for word in argv if word.startswith("--")}
    covered |= {(argv[0], "--quiet") for argv, _ in CASES if any(w.startswith("--quiet=") for w in argv)}
    covered |= {(argv[0], "--quick") for argv, _ in CASES if any(w.startswith("--quick=") for w in argv)}
    for name, cmd in sub.choices.items():
        for action in cmd._actions:
            flags = [o for o in action.option_strings if o.startswith("--") and o not in ("--help", "--debug")]
            for flag in flags:
                assert (name, flag) in covered, f"no bad-value case for funcnet {name} {flag}"
        if name == "graph":
            assert any(a[0] == "graph" and "expr:" in w for a, w in CASES)


def test_unknown_command_and_no_command_are_usage_errors(capsys):
    for argv, words in ((["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
                        ([], "the following arguments are required: COMMAND")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"funcnet: error: {words}" in err and "Traceback" not in err


def test_catalogue_lists_match_funcnet():
    from funcnet.activations import names
    from funcnet.models import init_names

    assert set(_common.INIT_NAMES) == set(init_names())
    assert _common.activation_names() == names()


# ------------------------------------------------------------------ runtime failures: one line, exit 1


def _fail_with(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


@pytest.mark.parametrize("exc, words", [
    (ValueError("fit: data holds no arrays;\n pass e.g. (X, y)"), "error: fit: data holds no arrays; pass e.g. (X, y)"),
    (TypeError("optimizer must be an optax GradientTransformation"), "error: optimizer must be an optax"),
    (OSError(28, "No space left on device"), "No space left on device"),
    (FloatingPointError("overflow"), "error: overflow"),
    (KeyError(0), "internal error: KeyError: 0 (please report it; --debug shows the traceback)"),
    (KeyboardInterrupt(), "funcnet train: interrupted"),
])
def test_runtime_failure_is_one_line_on_stderr(exc, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fn, "fit", _fail_with(exc))
    rc = main(["train", "--data", "xor", "--epochs", "1", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == (130 if isinstance(exc, KeyboardInterrupt) else 1)
    assert err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert err.startswith("funcnet train: ")


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(fn, "fit", _fail_with(ValueError("boom")))
    for argv in (["--debug", "train"], ["train", "--debug"]):
        with pytest.raises(ValueError, match="boom"):
            main([*argv, "--data", "xor", "--epochs", "1", "--out", str(tmp_path), "--quiet"])


def test_graph_failure_to_display_still_writes_the_json(tmp_path, capsys, monkeypatch):
    from funcnet import tracer

    monkeypatch.setattr(tracer, "trace", _fail_with(OverflowError("cannot convert float infinity to integer")))
    rc = main(["graph", "log(x)", "--var", "x=0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "graph.json" in err and "Traceback" not in err
    data = json.loads((tmp_path / "graph.json").read_text(), parse_constant=_no_constants)
    assert data["output"] is None and data["gradients"] == {"x": None}  # log 0 = -inf, d/dx = 1/0 = inf


def test_graph_at_a_singularity_never_crashes(tmp_path, capsys):
    for expr in ("log(x)", "sqrt(x)", "x / (x - x)", "2 ** 10000 * x"):
        rc = main(["graph", expr, "--var", "x=0", "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert rc in (0, 1) and "Traceback" not in err and err.count("\n") == rc, (expr, err)
        json.loads((tmp_path / "graph.json").read_text(), parse_constant=_no_constants)


# ------------------------------------------------------------------ strict JSON


def _no_constants(token):
    raise AssertionError(f"JSON holds the non-standard token {token}")


def test_write_json_is_strict(tmp_path):
    obj = {"a": float("nan"), "b": [1.0, float("inf"), -float("inf")], "c": np.array([np.nan, 2.0]),
           "d": np.float32(np.inf), "e": {"f": (np.int64(3), None, "s")}}
    path = _common.write_json(tmp_path / "x.json", obj)
    text = path.read_text()
    assert json.loads(text, parse_constant=_no_constants) == {
        "a": None, "b": [1.0, None, None], "c": [None, 2.0], "d": None, "e": {"f": [3, None, "s"]}}
    json.dumps(json.loads(text), allow_nan=False)


def test_train_that_diverges_still_writes_strict_json(tmp_path, capsys):
    # plain SGD with a learning rate of 1e30 overflows at once: the loss (and whatever fit returns) is not
    # finite. The JSON files must still parse as standard JSON (NaN/inf -> null).
    rc = main(["train", "--data", "xor", "--epochs", "2", "--optimizer", "sgd", "--lr", "1e30", "--hidden", "4",
               "--out", str(tmp_path), "--quiet"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if rc == 0:
        for name in ("history.json", "summary.json"):
            json.loads((tmp_path / name).read_text(), parse_constant=_no_constants)
    else:
        assert rc == 1 and captured.err.count("\n") == 1
