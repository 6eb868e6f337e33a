"""The subcommands of ``yiju``, one module each, found automatically.

To add a command, add a module here that defines::

    def register(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser("name", help="...")
        parser.set_defaults(handler=run)

    def run(args: argparse.Namespace, ctx: CliContext) -> int: ...  # returns the exit code

``run`` raises SDK errors freely: :func:`yiju.cli.main.main` turns them into exit codes and messages.
An optional module constant ``PRIORITY`` (default 100, lower first) orders the commands in ``--help``.
Nothing else needs editing. Modules whose names start with ``_`` are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable

DEFAULT_PRIORITY = 100


def register_all(
    subparsers: argparse._SubParsersAction,
    on_error: Callable[[str, BaseException], None],
    *,
    package: str = __name__,
) -> list[str]:
    """Let every command module of ``package`` add its parsers; return the names of those that did.

    A module that fails to import or register is passed to ``on_error`` and skipped: one broken command
    must not take the others down.
    """
    pkg = importlib.import_module(package)
    loaded = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            loaded.append(importlib.import_module(f"{package}.{info.name}"))
        except Exception as exc:
            on_error(info.name, exc)
    loaded.sort(key=lambda m: (getattr(m, "PRIORITY", DEFAULT_PRIORITY), m.__name__))
    names = []
    for module in loaded:
        name = module.__name__.rsplit(".", 1)[-1]
        register = getattr(module, "register", None)
        if register is None:
            continue
        try:
            register(subparsers)
        except Exception as exc:
            on_error(name, exc)
            continue
        names.append(name)
    return names
