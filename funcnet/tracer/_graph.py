"""Seeing the machinery: ``trace(f, *args)`` records a graph and its backward pass, step by step."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from funcnet.tracer._api import _Forward, _one
from funcnet.tracer._core import Box, backward, strip, toposort
from funcnet.tracer._tree import flatten, leaf_paths

__all__ = ["Graph", "Node", "trace"]


def _fmt(v) -> str:
    a = np.asarray(strip(v))
    if a.ndim == 0:
        x = float(a)
        return f"{x:.6g}" if x != int(x) or abs(x) >= 1e15 else f"{int(x)}"
    if a.size <= 6:
        return np.array2string(a, precision=4, separator=", ", suppress_small=True).replace("\n", "")
    return f"array{a.shape} mean={a.mean():.4g}"


class Node:
    """One value in a recorded graph: its name, operation, inputs, value and gradient."""

    __slots__ = ("name", "op", "inputs", "value", "grad", "local", "_replay")

    def __init__(self, name, op, inputs, value):
        self.name, self.op, self.inputs, self.value = name, op, inputs, value
        self.grad = None
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

    def __init__(self, nodes, output, steps):
        self.nodes: list[Node] = nodes
        self.output: Node = output
        self.steps: list[str] = steps

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
        """The nodes that take ``node`` (a :class:`Node`, its name or its index) as an argument."""
        k = self._index(node)
        return [n for n in self.nodes if n._replay is not None and k in n._replay[3].values()]

    def replay(self, overrides: dict) -> np.ndarray:
        """The output recomputed with some node values replaced, on plain NumPy values.

        ``overrides`` maps nodes (a :class:`Node`, its name or its index in ``nodes``) to
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
        """The explanation printed by :meth:`explain`, as a string."""
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


def trace(f: Callable, *args, argnums=None) -> Graph:
    """Run ``f(*args)`` with recording on and return the graph with values and gradients.

    Inputs are named after ``f``'s parameters (``w[0]['b']`` for pytree leaves);
    intermediate values are ``v1, v2, ...`` unless labelled with
    :func:`funcnet.tracer.name`. The output must be a scalar.

    Example (the lectures' gate graph):
      >>> from funcnet import tracer
      >>> def f(x, y, z):
      ...     q = tracer.name(x + y, "q")
      ...     return tracer.name(q * z, "L")
      >>> g = tracer.trace(f, -2.0, 5.0, -4.0)
      >>> [(n.name, float(n.grad)) for n in g.nodes]
      [('x', -4.0), ('y', -4.0), ('z', 3.0), ('q', -4.0), ('L', 1.0)]
    """
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args)
                        if all(np.issubdtype(np.result_type(strip(l)), np.inexact) for l in flatten(a)[0]))
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

    names: dict[int, str] = {}
    for a, boxes in zip(argnums, fw.inputs):
        base = params[a] if a < len(params) else f"arg{a}"
        paths = leaf_paths(args[a], base)
        for b, p in zip(boxes, paths):
            names[b.seq] = getattr(b, "label", None) or p
    order = toposort([out])[::-1]  # inputs first
    nodes: dict[int, Node] = {}
    counter = 0
    for b in [b for boxes in fw.inputs for b in boxes]:
        nodes[b.seq] = Node(names[b.seq], "input", [], b.value)
    for b in order:
        if b.prim is None:
            continue
        counter += 1
        label = getattr(b, "label", None) or (f"v{counter}" if b is not out else "out")
        names[b.seq] = label
        inputs = []
        parents = dict(b.parents)
        for i, r in enumerate(b.raw):
            inputs.append(names.get(parents[i].seq, "?") if i in parents else _fmt(r))
        node = Node(label, b.prim.name, inputs, b.value)
        node._replay = (b.prim.fun, tuple(strip(r) for r in b.raw), dict(b.kwargs or {}),
                        {i: p.seq for i, p in b.parents})  # parent seqs, made indices below
        ones = np.ones_like(np.asarray(strip(b.value)))
        kw = b.kwargs or {}
        for i, parent in b.parents:
            try:
                rule = b.prim.vjps[i] if b.prim.vjps is not None else None
                d = rule(ones, b.value, *b.raw, **kw) if rule else b.prim.argnum_vjp(i, ones, b.value, *b.raw, **kw)
                node.local[i] = np.asarray(strip(d))
            except Exception:  # a rule that cannot take a ones cotangent: show nothing
                pass
        nodes[b.seq] = node

    L = names[out.seq]
    steps: list[str] = []
    fanout: dict[int, int] = {}
    for b in order:
        for _, p in b.parents:
            fanout[p.seq] = fanout.get(p.seq, 0) + 1

    def record(event, node, *info):
        if event == "node":
            nodes[node.seq].grad = info[0]
            if node is out:
                steps.append(f"d{L}/d{L} = 1")
            return
        parent, i, c, prev = info
        child, pname = names[node.seq], names[parent.seq]
        local = nodes[node.seq].local.get(i)
        via = f"d{L}/d{child} · d{child}/d{pname}"
        if local is not None and np.ndim(local) == 0 and np.ndim(strip(c)) == 0:
            via += f" = {_fmt(nodes[node.seq].grad)} · {_fmt(local)}"
        if prev is None:
            steps.append(f"d{L}/d{pname} = {via} = {_fmt(c)}")
        else:
            steps.append(
                f"d{L}/d{pname} accumulates (fan-out: {pname} is used {fanout[parent.seq]} times): "
                f"{_fmt(prev)} + {via} = {_fmt(prev + c)}"
            )

    backward([out], [_one(out.value)], record=record)
    seq_order = [b.seq for boxes in fw.inputs for b in boxes] + [b.seq for b in order if b.prim is not None]
    graph_nodes = [nodes[s] for s in seq_order]
    index = {s: k for k, s in enumerate(seq_order)}
    for n in graph_nodes:
        if n._replay is not None:
            fun, raw, kw, parents = n._replay
            n._replay = (fun, raw, kw, {i: index[s] for i, s in parents.items()})
    return Graph(graph_nodes, nodes[out.seq], steps)
