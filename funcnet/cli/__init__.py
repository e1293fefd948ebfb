"""The ``funcnet`` command line: one module per sub-command, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order `funcnet --help` lists them.
_COMMANDS = ("demo", "train", "visualize", "gradcheck", "graph")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="funcnet",
        description="funcnet: functional MLPs, input optimization and autodiff you can inspect, on JAX.",
    )
    from funcnet import __version__

    parser.add_argument("--version", action="version", version=f"funcnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"funcnet.cli._{name}")
        except ModuleNotFoundError as e:
            if e.name == f"funcnet.cli._{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
