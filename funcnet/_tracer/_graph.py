"""Placeholder, replaced below."""
def trace(*a, **k):
    raise NotImplementedError
class Graph: pass
