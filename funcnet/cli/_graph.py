"""`funcnet graph "EXPR" --var x=-2 ...`: trace an expression, explain its backward pass, write Graphviz files."""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import pathlib
import shutil
import subprocess

import numpy as np

from funcnet.cli import _common
from funcnet.cli._common import UsageError

# Functions an expression may call, by name -> number of arguments (resolved lazily in _functions).
_ARITY = {"exp": 1, "log": 1, "sqrt": 1, "tanh": 1, "sin": 1, "cos": 1, "abs": 1, "maximum": 2, "minimum": 2,
          "sigmoid": 1, "relu": 1, "softplus": 1}
_FUNCTIONS = tuple(_ARITY)
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: +a}
# Size limits: a graph a person can read, far from Python's recursion limit.
MAX_CHARS = 2000
MAX_NODES = 500
MAX_DEPTH = 50


def register(sub, parents=()) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "graph", parents=list(parents),
        help="trace an expression and show its computational graph with values and gradients",
        description="Trace EXPR with funcnet's tracer at the given variable values, print the forward "
                    "values, local derivatives and backward sums step by step, and write the graph as "
                    "Graphviz DOT (plus SVG and PNG when the Graphviz 'dot' program is installed) and "
                    f"NAME.json. EXPR uses numbers, + - * / ** and the functions {', '.join(_FUNCTIONS)}; "
                    "'name = expr' parts separated by ';' label intermediate values, e.g. "
                    f"\"q = x + y; f = q * z\". At most {MAX_CHARS} characters, {MAX_NODES} syntax nodes, "
                    f"nesting depth {MAX_DEPTH}. Values that become inf or nan (log(0), 1/0) are shown as such.",
        epilog='example: funcnet graph "(x + y) * z" --var x=-2 --var y=5 --var z=-4   '
               '(an EXPR that starts with "-" goes after "--": funcnet graph --var x=1 -- "-x * 2")')
    p.add_argument("expr", help='the expression, e.g. "(x + y) * z" or "q = x + y; f = q * z"')
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a variable and its finite value (repeat for each variable)")
    p.add_argument("--name", default="graph",
                   help="base name of the files written inside --out, no folders (default: graph)")
    _common.add_out(p, "funcnet-out/graph")
    return p


def validate(args) -> None:
    args.values = _parse_vars(args.var)
    args.steps = _parse_program(args.expr)
    _check_names(args.steps, set(args.values))
    _common.file_name(args.name)
    args.out = _common.prepare_out(args.out)


def _parse_vars(items) -> dict[str, float]:
    values: dict[str, float] = {}
    for item in items:
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError("--var", f"expected NAME=VALUE (e.g. x=-2), got {item!r}")
        if name in _FUNCTIONS:
            raise UsageError("--var", f"{name!r} is a function name; pick another variable name")
        try:
            values[name] = float(val)
        except ValueError:
            raise UsageError("--var", f"the value of {name} must be a number, got {val!r}") from None
        if not math.isfinite(values[name]):
            raise UsageError("--var", f"the value of {name} must be finite, got {val!r}")
    if not values:
        raise UsageError("--var", "give at least one variable, e.g. --var x=-2")
    return values


def _depth(node: ast.AST) -> int:
    """Nesting depth of ``node``, iteratively (a deep tree must not exhaust Python's stack here)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            break
        stack.extend((c, d + 1) for c in ast.iter_child_nodes(n))
    return deepest


def _parse_program(expr: str) -> list[tuple[str | None, ast.expr]]:
    """``"q = x + y; f = q * z"`` -> [("q", <x + y>), ("f", <q * z>)]; a bare expression has no name."""
    if len(expr) > MAX_CHARS:
        raise UsageError("expr", f"is {len(expr)} characters long; at most {MAX_CHARS} are allowed")
    try:
        tree = ast.parse(expr.strip(), mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise UsageError("expr", f"cannot parse {expr[:80]!r}: {getattr(e, 'msg', None) or 'too deeply nested'}"
                         ) from None
    n_nodes = sum(isinstance(n, ast.expr) for n in ast.walk(tree))  # numbers, names, operations, calls
    if n_nodes > MAX_NODES:
        raise UsageError("expr", f"has {n_nodes} syntax nodes; at most {MAX_NODES} are allowed")
    if _depth(tree) > MAX_DEPTH:
        raise UsageError("expr", f"is nested deeper than {MAX_DEPTH} levels")
    steps: list[tuple[str | None, ast.expr]] = []
    for i, stmt in enumerate(tree.body):
        last = i == len(tree.body) - 1
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            if stmt.targets[0].id in _FUNCTIONS:
                raise UsageError("expr", f"{stmt.targets[0].id!r} is a function name; pick another label")
            steps.append((stmt.targets[0].id, stmt.value))
        elif isinstance(stmt, ast.Expr) and last:
            steps.append((None, stmt.value))
        else:
            raise UsageError("expr", f"only 'name = expression' parts and a final expression are allowed, "
                                     f"got {ast.unparse(stmt)[:80]!r}")
    if not steps:
        raise UsageError("expr", "the expression is empty")
    return steps


def _check_names(steps, known: set[str]) -> None:
    """Every name defined before use, every call a known function with the right number of arguments."""
    known = set(known)
    for label, node in steps:
        for n in ast.walk(node):
            _check_node(n, known)
        if label is not None:
            known.add(label)


def _check_node(node: ast.AST, known: set[str]) -> None:
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if name not in _ARITY:
            raise UsageError("expr", f"unknown function {name!r}; available: {', '.join(_FUNCTIONS)}")
        if node.keywords or len(node.args) != _ARITY[name] or any(isinstance(a, ast.Starred) for a in node.args):
            raise UsageError("expr", f"{name} takes {_ARITY[name]} positional argument"
                                     f"{'s' if _ARITY[name] > 1 else ''}, got {ast.unparse(node)[:80]!r}")
    elif isinstance(node, ast.Name):
        if node.id not in known and node.id not in _ARITY:
            raise UsageError("expr", f"unknown name {node.id!r}; give it a value with --var {node.id}=VALUE "
                                     f"(known: {sorted(known)})")
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
            raise UsageError("expr", f"unsupported constant {ast.unparse(node)[:80]!r}; only numbers")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise UsageError("expr", f"unsupported operator in {ast.unparse(node)[:80]!r}; use + - * / **")
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise UsageError("expr", f"unsupported operator in {ast.unparse(node)[:80]!r}")
    elif not isinstance(node, (ast.expr_context, ast.operator, ast.unaryop)):
        raise UsageError("expr", f"unsupported syntax {ast.unparse(node)[:80]!r}; use numbers, variables, "
                                 f"+ - * / **, and calls of {', '.join(_FUNCTIONS)}")


def _functions():
    from funcnet import activations, tracer

    xp = tracer.numpy
    table = {name: getattr(xp, name) for name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "abs",
                                                   "maximum", "minimum")}
    table.update(sigmoid=activations.sigmoid, relu=activations.relu, softplus=activations.softplus)
    return table


def _evaluate(node: ast.expr, env: dict, funcs: dict):
    """Evaluate a checked expression (see `_check_names`) on tracer values; numbers as float64."""
    if isinstance(node, ast.Constant):
        return np.float64(node.value)  # overflow gives inf, as for traced values, not OverflowError
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_evaluate(node.left, env, funcs), _evaluate(node.right, env, funcs))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env, funcs))
    return funcs[node.func.id](*[_evaluate(a, env, funcs) for a in node.args])


def build_function(expr: str, names: list[str]):
    """A function of ``names`` (in order, with those parameter names) computing ``expr`` with tracer labels.

    Raises:
      UsageError: ``expr`` is not a valid expression of ``names`` (syntax, size, unknown names, arity).
    """
    from funcnet import tracer

    steps = _parse_program(expr)
    _check_names(steps, set(names))
    funcs = _functions()

    def f(*values):
        env = dict(zip(names, values))
        result = None
        for label, node in steps:
            result = _evaluate(node, env, funcs)
            if label is not None:
                result = tracer.name(result, label) if isinstance(result, tracer.Box) else result
                env[label] = result
        return result

    f.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return f


def _render(dot_path: pathlib.Path, name: str) -> list[pathlib.Path]:
    """SVG and PNG from the DOT file when Graphviz is installed; a note otherwise."""
    dot = shutil.which("dot")
    if dot is None:
        print("note: Graphviz 'dot' is not installed; wrote the DOT source only "
              f"(render it with: dot -Tsvg {dot_path} -o {dot_path.with_suffix('.svg')})")
        return []
    written = []
    for fmt in ("svg", "png"):
        target = dot_path.parent / f"{name}.{fmt}"
        proc = subprocess.run([dot, f"-T{fmt}", str(dot_path), "-o", str(target)], capture_output=True, text=True)
        if proc.returncode == 0:
            written.append(target)
        else:
            print(f"warning: Graphviz failed to render {fmt}: {' '.join(proc.stderr.split())}")
    return written


def run(args) -> int:
    from funcnet import tracer

    names = list(args.values)
    f = build_function(args.expr, names)
    point = [np.float64(args.values[n]) for n in names]
    with np.errstate(all="ignore"):  # inf and nan are results to show (log(0), 1/0), not warnings
        value, grads = tracer.value_and_grad(f, argnums=tuple(range(len(names))))(*point)
    output = np.asarray(value, dtype=np.float64)
    json_path = _common.write_json(args.out / f"{args.name}.json", {
        "expr": args.expr, "vars": args.values, "output": output.tolist(),
        "gradients": {n: np.asarray(g).tolist() for n, g in zip(names, grads)}})
    try:
        with np.errstate(all="ignore"):
            graph = tracer.trace(f, *point)
            graph.explain()
            dot_source = graph.to_dot()
    except (ArithmeticError, ValueError) as e:  # formatting a non-finite value
        raise ValueError(f"the tracer could not display this graph ({_common.error_line(e)}); its output and "
                         f"gradients are in {json_path}") from e
    if not np.all(np.isfinite(output)):
        print(f"note: the output is {output.tolist()}: a step of the expression left the finite numbers "
              "(see the forward values above)")
    dot_path = args.out / f"{args.name}.dot"
    dot_path.write_text(dot_source + "\n")
    written = [dot_path, *_render(dot_path, args.name), json_path]
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
