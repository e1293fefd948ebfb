"""Seeing the machinery: ``trace(f, *args)`` records a graph and its backward pass, step by step.

The backward pass is the core's own walk (`funcnet.tracer._core.backward`), narrated by an
observer; with ``tangents=`` the forward pass of tangents (forward mode) is narrated as well, by
running the core's forward trace with an observer.
"""

from __future__ import annotations

import html
import inspect
import shutil
import subprocess
from typing import Any, Callable

import numpy as np

from funcnet.tracer._api import _Forward, _jvp, _one
from funcnet.tracer._core import backward, strip
from funcnet.tracer._tree import flatten, leaf_paths

__all__ = ["Graph", "Node", "trace"]


def _fmt(v) -> str:
    """A short text for a value; inf and NaN are shown as values."""
    a = np.asarray(strip(v))
    if a.ndim == 0:
        x = a.item()
        if isinstance(x, float) and np.isfinite(x) and x == int(x) and abs(x) < 1e15:
            return f"{int(x)}"
        return f"{x:.6g}" if isinstance(x, float) else str(x)
    if a.size <= 6:
        return np.array2string(a, precision=4, separator=", ", suppress_small=True).replace("\n", "")
    return f"array{a.shape} mean={np.mean(a):.4g}"


def _toposort(root) -> list:
    """The boxes of ``root``'s trace that it depends on, parents before children (by creation order)."""
    seen, stack = {}, [root]
    while stack:
        node = stack.pop()
        if node.seq not in seen:
            seen[node.seq] = node
            stack.extend(p for p in node.parents if p is not None)
    return [seen[s] for s in sorted(seen)]


class Node:
    """One value in a recorded graph: its name, operation, inputs, value and gradient."""

    __slots__ = ("name", "op", "inputs", "value", "grad", "tangent", "local", "_replay")

    def __init__(self, name, op, inputs, value):
        self.name, self.op, self.inputs, self.value = name, op, inputs, value
        self.grad = None
        self.tangent = None       # with trace(..., tangents=...): the forward-mode tangent
        self.local: dict[int, Any] = {}  # argnum -> local derivative (VJP of a ones cotangent)
        # for Graph.replay: (plain function, plain arguments, kwargs, {argnum: index of the parent node})
        self._replay: tuple | None = None

    def __repr__(self):
        return f"Node({self.name} = {self.op}({', '.join(self.inputs)}) = {_fmt(self.value)})"


class Graph:
    """A recorded computation: ``nodes`` in topological order (inputs first), the output last.

    ``explain()`` prints the forward values, each node's local derivatives, and the
    backward sums step by step; ``to_dot()`` returns Graphviz source.
    """

    def __init__(self, nodes, output, steps, forward: bool = False):
        self.nodes: list[Node] = nodes
        self.output: Node = output
        self.steps: list[str] = steps
        self.forward = forward        # whether the nodes carry forward-mode tangents

    def __getitem__(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}; nodes are {[n.name for n in self.nodes]}")

    def _index(self, key) -> int:
        if isinstance(key, Node):
            for k, n in enumerate(self.nodes):
                if n is key:
                    return k
            raise KeyError(f"{key!r} is not a node of this graph")
        if isinstance(key, str):
            return self.nodes.index(self[key])
        if isinstance(key, (int, np.integer)) and -len(self.nodes) <= key < len(self.nodes):
            return int(key) % len(self.nodes)
        raise KeyError(f"expected a Node of this graph, a node name or an index below {len(self.nodes)}; got {key!r}")

    def consumers(self, node) -> list[Node]:
        """The nodes that take ``node`` (a `Node`, its name or its index) as an argument."""
        k = self._index(node)
        return [n for n in self.nodes if n._replay is not None and k in n._replay[3].values()]

    def replay(self, overrides: dict) -> np.ndarray:
        """The output recomputed with some node values replaced, on plain NumPy values.

        ``overrides`` maps nodes (a `Node`, its name or its index in ``nodes``) to
        new values of the same shape. Every node downstream of a replaced one is
        recomputed with its primitive's NumPy function and the recorded constant
        arguments; the others keep their recorded values. Nothing is traced, and the
        graph is not changed. Useful to probe the recorded function around a point,
        e.g. a finite difference with respect to an intermediate value.

        Example:
          >>> from funcnet import tracer
          >>> g = tracer.trace(lambda x, y: tracer.name(x * y, "q") + 1.0, 2.0, 3.0)
          >>> float(g.replay({"q": 10.0})), float(g.replay({"x": 4.0}))
          (11.0, 13.0)
        """
        new = {self._index(k): np.asarray(strip(v)) for k, v in overrides.items()}
        vals = [np.asarray(strip(n.value)) for n in self.nodes]
        dirty = set(new)
        for k, n in enumerate(self.nodes):
            if k in new:
                vals[k] = new[k]
            elif n._replay is not None and dirty.intersection(n._replay[3].values()):
                fun, args, kwargs, parents = n._replay
                a = list(args)
                for i, p in parents.items():
                    a[i] = vals[p]
                vals[k] = np.asarray(fun(*a, **kwargs))
                dirty.add(k)
        return vals[self.nodes.index(self.output)]

    def text(self) -> str:
        """The explanation printed by `explain`, as a string."""
        L = self.output.name
        lines = ["Forward pass (values):"]
        for n in self.nodes:
            if n.op == "input":
                lines.append(f"  {n.name} = {_fmt(n.value)}")
            else:
                lines.append(f"  {n.name} = {n.op}({', '.join(n.inputs)}) = {_fmt(n.value)}")
        lines.append("Local derivatives (each operation with respect to its inputs):")
        for n in self.nodes:
            for i, d in n.local.items():
                lines.append(f"  d{n.name}/d{n.inputs[i]} = {_fmt(d)}")
        lines.append(f"Backward pass (reverse topological order, starting from d{L}/d{L} = 1):")
        lines.extend("  " + s for s in self.steps)
        lines.append("Gradients:")
        for n in self.nodes:
            if n.op == "input":
                lines.append(f"  d{L}/d{n.name} = {_fmt(n.grad) if n.grad is not None else '0 (unused)'}")
        if self.forward:
            lines.append("Forward mode (tangents: each value's derivative along the input direction, "
                         "pushed forward with the values):")
            for n in self.nodes:
                lines.append(f"  {n.name} = {_fmt(n.value)}, tangent {_fmt(n.tangent)}")
        return "\n".join(lines)

    def explain(self) -> None:
        """Print the forward values, local derivatives and backward sums."""
        print(self.text())

    def to_dot(self) -> str:
        """Graphviz source: one box per value with its value and gradient; edges carry local derivatives."""
        out = ["digraph G {", "  rankdir=LR;", '  node [shape=record, fontname="monospace"];']
        for k, n in enumerate(self.nodes):
            g = _fmt(n.grad) if n.grad is not None else "0"
            head = n.name if n.op == "input" else f"{n.name} = {n.op}"
            label = f"{head} | value {_fmt(n.value)} | grad {g}".replace('"', "'")
            out.append(f'  n{k} [label="{{{label}}}"];')
        index = {n.name: k for k, n in enumerate(self.nodes)}
        for k, n in enumerate(self.nodes):
            for i, src in enumerate(n.inputs):
                if src in index:
                    lab = f' [label="{_fmt(n.local[i])}"]' if i in n.local else ""
                    out.append(f"  n{index[src]} -> n{k}{lab};")
        out.append("}")
        return "\n".join(out)

    def __repr__(self):
        return f"Graph({len(self.nodes)} nodes, output {self.output.name} = {_fmt(self.output.value)})"

    def _repr_svg_(self):
        """Notebook display: the graph drawn by Graphviz, when its ``dot`` program is installed."""
        dot = shutil.which("dot")
        if dot is None:
            return None                 # Jupyter then falls back to _repr_html_
        done = subprocess.run([dot, "-Tsvg"], input=self.to_dot(), capture_output=True, text=True, timeout=30)
        return done.stdout if done.returncode == 0 else None

    def _repr_html_(self):
        """Notebook display without Graphviz: the explanation as preformatted text."""
        return f"<pre>{html.escape(self.text())}</pre>"


def trace(f: Callable, *args, argnums=None, tangents=None) -> Graph:
    """Run ``f(*args)`` with recording on and return the graph with values and gradients.

    Inputs are named after ``f``'s parameters (``w[0]['b']`` for pytree leaves); intermediate values
    are ``v1, v2, ...`` unless labelled with `funcnet.tracer.name`. The output must be a scalar.
    With ``tangents`` (one per argument in ``argnums``, like `funcnet.tracer.jvp`'s), the
    forward pass is also run in forward mode and every node gets its ``tangent``: the lectures'
    forward-mode table, printed by ``explain()`` after the backward pass.

    Example (the lectures' gate graph):
      >>> from funcnet import tracer
      >>> def f(x, y, z):
      ...     q = tracer.name(x + y, "q")
      ...     return tracer.name(q * z, "L")
      >>> g = tracer.trace(f, -2.0, 5.0, -4.0)
      >>> [(n.name, float(n.grad)) for n in g.nodes]
      [('x', -4.0), ('y', -4.0), ('z', 3.0), ('q', -4.0), ('L', 1.0)]
      >>> g = tracer.trace(f, -2.0, 5.0, -4.0, tangents=(1.0, 0.0, 0.0))
      >>> [(n.name, float(n.tangent)) for n in g.nodes]
      [('x', 1.0), ('y', 0.0), ('z', 0.0), ('q', 1.0), ('L', -4.0)]
    """
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args)
                        if all(np.issubdtype(np.result_type(strip(leaf)), np.inexact) for leaf in flatten(a)[0]))
    try:
        params = list(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        params = []
    fw = _Forward(f, args, tuple(argnums), {})
    out = fw.out
    if not fw.traced(out):
        raise ValueError("trace: the output does not depend on the traced inputs")
    if np.shape(strip(out)) != ():
        raise TypeError(f"trace: the output must be a scalar, got shape {np.shape(strip(out))}")
    order = _toposort(out)
    names = _names(fw, args, argnums, params, order, out)
    nodes = {b.seq: _node(b, names) for b in order}
    for boxes in fw.inputs:                 # inputs the output does not depend on
        for b in boxes:
            nodes.setdefault(b.seq, Node(names[b.seq], "input", [], b.value))
    narrator = _Narrator(nodes, names, order, out)
    backward([out], [_one(out.value)], narrator)
    seq_order = [b.seq for boxes in fw.inputs for b in boxes] + [b.seq for b in order if b.prim is not None]
    index = {s: k for k, s in enumerate(seq_order)}
    for b in order:
        n = nodes[b.seq]
        if n._replay is not None:
            fun, raw, kw, parents = n._replay
            n._replay = (fun, raw, kw, {i: index[s] for i, s in parents.items()})
    graph = Graph([nodes[s] for s in seq_order], nodes[out.seq], narrator.steps, forward=tangents is not None)
    if tangents is not None:
        _push_tangents(graph, seq_order, f, args, argnums, tangents)
    return graph


def _names(fw, args, argnums, params, order, out) -> dict:
    names: dict[int, str] = {}
    for a, boxes in zip(argnums, fw.inputs):
        paths = leaf_paths(args[a], params[a] if a < len(params) else f"arg{a}")
        for b, p in zip(boxes, paths):
            names[b.seq] = b.label or p
    counter = 0
    for b in order:
        if b.prim is not None:
            counter += 1
            names[b.seq] = b.label or (f"v{counter}" if b is not out else "out")
    return names


def _node(b, names) -> Node:
    """The display node of box ``b``, with its local derivatives (each rule's VJP of a ones cotangent)."""
    if b.prim is None:
        return Node(names[b.seq], "input", [], b.value)
    inputs = [names[p.seq] if p is not None else _fmt(r) for p, r in zip(b.parents, b.raw)]
    node = Node(names[b.seq], b.prim.name, inputs, b.value)
    node._replay = (b.prim.fun, tuple(strip(r) for r in b.raw), dict(b.kwargs or {}),
                    {i: p.seq for i, p in enumerate(b.parents) if p is not None})
    ones = np.ones_like(np.asarray(strip(b.value)))
    for i, parent in enumerate(b.parents):
        if parent is not None:
            node.local[i] = np.asarray(strip(b.prim.rule("vjp", i)(ones, b.value, *b.raw, **(b.kwargs or {}))))
    return node


class _Narrator:
    """The backward walk's observer that writes down each step (see ``_core.backward``)."""

    def __init__(self, nodes, names, order, out):
        self.nodes, self.names, self.out, self.steps = nodes, names, out, []
        self.L = names[out.seq]
        self.fanout: dict[int, int] = {}
        for b in order:
            for p in b.parents:
                if p is not None:
                    self.fanout[p.seq] = self.fanout.get(p.seq, 0) + 1

    def visit(self, node, g):
        self.nodes[node.seq].grad = g
        if node is self.out:
            self.steps.append(f"d{self.L}/d{self.L} = 1")

    def edge(self, node, parent, i, c, prev):
        L, child, pname = self.L, self.names[node.seq], self.names[parent.seq]
        local = self.nodes[node.seq].local.get(i)
        via = f"d{L}/d{child} · d{child}/d{pname}"
        if local is not None and np.ndim(local) == 0 and np.ndim(strip(c)) == 0:
            via += f" = {_fmt(self.nodes[node.seq].grad)} · {_fmt(local)}"
        if prev is None:
            self.steps.append(f"d{L}/d{pname} = {via} = {_fmt(c)}")
        else:
            self.steps.append(f"d{L}/d{pname} accumulates (fan-out: {pname} is used {self.fanout[parent.seq]} "
                              f"times): {_fmt(prev)} + {via} = {_fmt(prev + c)}")


def _push_tangents(graph, seqs, f, args, argnums, tangents):
    """Run ``f`` again in forward mode and give each node its tangent.

    The program is the same, so the forward run makes its boxes in the same order: the box made
    k-th after the first input is the node recorded k-th after it (``seqs``: the nodes' creation numbers).
    """
    made = {}

    def observe(box, box_args):
        made[box.seq] = box

    def g(*xs):
        full = list(args)
        for a, x in zip(argnums, xs):
            full[a] = x
        return f(*full)

    _, _, inputs = _jvp(g, tuple(args[a] for a in argnums), tuple(tangents), observe)
    made.update((b.seq, b) for b in inputs)
    base, fbase = seqs[0], inputs[0].seq
    for node, s in zip(graph.nodes, seqs):
        box = made[s - base + fbase]
        t = box.tangent
        node.tangent = np.zeros_like(np.asarray(strip(box.value))) if t is None else np.asarray(strip(t))
