"""The ``funcnet`` command line: one module per sub-command, each with ``register(subparsers)``.

Conventions every command follows:

* a bad flag value is reported in argparse's convention: ``funcnet CMD: error: argument --flag: ...`` on
  stderr, exit status 2, before any work (each command's ``validate`` runs before its ``run``);
* a failure while working is one line ``funcnet CMD: error: ...`` on stderr, exit status 1;
* no traceback unless ``--debug``;
* building the parser and ``--help`` import no JAX (the commands import it when they run).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from funcnet.cli._common import UsageError, error_line, stderr

# Sub-command modules, in the order `funcnet --help` lists them.
_COMMANDS = ("demo", "train", "visualize", "gradcheck", "graph")
# What a command may raise while working and still get a one-line message: funcnet's own error types
# (ValueError/TypeError at its boundaries), files (OSError), arithmetic on non-finite values, JAX's runtime
# errors (RuntimeError subclasses), expressions too deep to evaluate. Anything else is a bug: --debug shows it.
_RUNTIME_ERRORS = (ValueError, TypeError, OSError, ArithmeticError, RuntimeError, MemoryError)
_INTERNAL_ERRORS = (LookupError, AttributeError, AssertionError)


def _version() -> str:
    from funcnet import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``funcnet`` parser with every sub-command (imports no JAX)."""
    parser = argparse.ArgumentParser(
        prog="funcnet",
        description="funcnet: functional MLPs, input optimization and autodiff you can inspect, on JAX.",
        epilog="Each command writes its files (PNG, JSON, checkpoint) to --out. Exit status: 0 ok, 1 the work "
               "failed (one line on stderr), 2 a bad command line. Add --debug for a traceback.",
    )
    parser.add_argument("--version", action="version", version=f"funcnet {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of a failure")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the Python traceback of a failure")
    for name in _COMMANDS:
        module = importlib.import_module(f"funcnet.cli._{name}")
        sub_parser = module.register(sub, parents=[debug])
        sub_parser.set_defaults(_parser=sub_parser, _validate=getattr(module, "validate", None), run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``funcnet ARGV``; returns the exit status (argparse errors raise ``SystemExit(2)``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._validate is not None:
        try:
            args._validate(args)
        except UsageError as e:
            args._parser.error(str(e))  # prints usage and "funcnet CMD: error: ...", exits 2
    try:
        return int(args.run(args) or 0)
    except UsageError as e:  # a flag found wrong only once the inputs were read (e.g. --layer of a loaded model)
        args._parser.error(str(e))
    except KeyboardInterrupt:
        if args.debug:
            raise
        stderr(f"funcnet {args.command}: interrupted")
        return 130
    except _RUNTIME_ERRORS as e:
        if args.debug:
            raise
        stderr(f"funcnet {args.command}: error: {error_line(e)}")
        return 1
    except _INTERNAL_ERRORS as e:
        if args.debug:
            raise
        stderr(f"funcnet {args.command}: internal error: {type(e).__name__}: {error_line(e)} "
               "(please report it; --debug shows the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
