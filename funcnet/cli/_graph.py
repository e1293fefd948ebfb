"""`funcnet graph "EXPR" --var x=-2 ...`: trace an expression, explain its backward pass, write Graphviz files."""

from __future__ import annotations

import ast
import inspect
import math
import shutil
import subprocess

from funcnet.cli import _common

# Functions an expression may call, by name -> how to get them (resolved lazily).
_FUNCTIONS = ("exp", "log", "sqrt", "tanh", "sin", "cos", "abs", "maximum", "minimum",
              "sigmoid", "relu", "softplus")
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: +a}


def register(sub) -> None:
    p = sub.add_parser(
        "graph", help="trace an expression and show its computational graph with values and gradients",
        description="Trace EXPR with funcnet's tracer at the given variable values, print the forward "
                    "values, local derivatives and backward sums step by step, and write the graph as "
                    "Graphviz DOT (plus SVG and PNG when the Graphviz 'dot' program is installed). "
                    f"EXPR uses + - * / ** and the functions {', '.join(_FUNCTIONS)}; "
                    "'name = expr' parts separated by ';' label intermediate values, e.g. "
                    "\"q = x + y; f = q * z\".",
        epilog='example: funcnet graph "(x + y) * z" --var x=-2 --var y=5 --var z=-4   '
               '(an EXPR that starts with "-" goes after "--": funcnet graph --var x=1 -- "-x * 2")')
    p.add_argument("expr", help='the expression, e.g. "(x + y) * z" or "q = x + y; f = q * z"')
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a variable and its value (repeat for each variable)")
    p.add_argument("--name", default="graph", help="base name of the files written (default: graph)")
    _common.add_out(p, "funcnet-out/graph")
    p.set_defaults(run=run)


def _parse_vars(items) -> dict[str, float]:
    values: dict[str, float] = {}
    for item in items:
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise SystemExit(f"funcnet graph: --var expects NAME=VALUE (e.g. x=-2), got {item!r}")
        if name in _FUNCTIONS:
            raise SystemExit(f"funcnet graph: {name!r} is a function name; pick another variable name")
        try:
            values[name] = float(val)
        except ValueError:
            raise SystemExit(f"funcnet graph: the value of {name} must be a number, got {val!r}") from None
        if not math.isfinite(values[name]):
            raise SystemExit(f"funcnet graph: the value of {name} must be finite, got {val!r}")
    return values


def _parse_program(expr: str) -> list[tuple[str | None, ast.expr]]:
    """``"q = x + y; f = q * z"`` -> [("q", <x + y>), ("f", <q * z>)]; a bare expression has no name."""
    try:
        tree = ast.parse(expr.strip(), mode="exec")
    except SyntaxError as e:
        raise SystemExit(f"funcnet graph: cannot parse {expr!r}: {e.msg}") from None
    steps: list[tuple[str | None, ast.expr]] = []
    for i, stmt in enumerate(tree.body):
        last = i == len(tree.body) - 1
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            steps.append((stmt.targets[0].id, stmt.value))
        elif isinstance(stmt, ast.Expr) and last:
            steps.append((None, stmt.value))
        else:
            raise SystemExit(f"funcnet graph: only 'name = expression' parts and a final expression are allowed, "
                             f"got {ast.unparse(stmt)!r}")
    if not steps:
        raise SystemExit("funcnet graph: the expression is empty")
    return steps


def _functions():
    from funcnet import activations, tracer

    xp = tracer.numpy
    table = {name: getattr(xp, name) for name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "abs",
                                                   "maximum", "minimum")}
    table.update(sigmoid=activations.sigmoid, relu=activations.relu, softplus=activations.softplus)
    return table


def _evaluate(node: ast.expr, env: dict, funcs: dict):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise SystemExit(f"funcnet graph: unknown name {node.id!r}; give it a value with --var {node.id}=VALUE "
                             f"(known: {sorted(env)})")
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_evaluate(node.left, env, funcs), _evaluate(node.right, env, funcs))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, env, funcs))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in funcs:
            raise SystemExit(f"funcnet graph: unknown function {node.func.id!r}; available: {', '.join(_FUNCTIONS)}")
        return funcs[node.func.id](*[_evaluate(a, env, funcs) for a in node.args])
    raise SystemExit(f"funcnet graph: unsupported syntax {ast.unparse(node)!r}; use numbers, variables, "
                     f"+ - * / **, and calls of {', '.join(_FUNCTIONS)}")


def build_function(expr: str, names: list[str]):
    """A function of ``names`` (in order, with those parameter names) computing ``expr`` with tracer labels."""
    from funcnet import tracer

    steps = _parse_program(expr)
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


def run(args) -> int:
    import numpy as np

    from funcnet import tracer

    values = _parse_vars(args.var)
    if not values:
        raise SystemExit("funcnet graph: give at least one variable, e.g. --var x=-2")
    names = list(values)
    f = build_function(args.expr, names)
    try:
        graph = tracer.trace(f, *[np.float64(values[n]) for n in names])
    except ValueError as e:
        raise SystemExit(f"funcnet graph: {e}") from None
    graph.explain()

    out = _common.out_dir(args.out)
    dot_path = out / f"{args.name}.dot"
    dot_path.write_text(graph.to_dot() + "\n")
    written = [dot_path]
    dot = shutil.which("dot")
    if dot is not None:
        for fmt in ("svg", "png"):
            target = out / f"{args.name}.{fmt}"
            proc = subprocess.run([dot, f"-T{fmt}", str(dot_path), "-o", str(target)],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                written.append(target)
            else:
                print(f"warning: Graphviz failed to render {fmt}: {proc.stderr.strip()}")
    else:
        print("note: Graphviz 'dot' is not installed; wrote the DOT source only "
              f"(render it with: dot -Tsvg {dot_path} -o {out / (args.name + '.svg')})")
    grads = {n.name: np.asarray(n.grad).tolist() if n.grad is not None else 0.0
             for n in graph.nodes if n.op == "input"}
    written.append(_common.write_json(out / f"{args.name}.json", {
        "expr": args.expr, "vars": values, "output": float(np.asarray(graph.output.value)), "gradients": grads}))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
