"""Options shared by several commands, so they are spelled the same everywhere."""

from __future__ import annotations

import argparse

DEFAULT_WAIT_TIMEOUT = 30.0


def positive_float(value: str) -> float:
    """argparse type: a number of seconds greater than zero."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {value!r}")
    return number


def add_user(parser: argparse.ArgumentParser, *, help: str | None = None) -> None:
    """``--user``: whose token to use (default ``$YIJU_USER``, see :meth:`CliContext.user`)."""
    parser.add_argument(
        "--user",
        default=None,
        metavar="USER_ID",
        help=help or "act as this user: its token is read from $YIJU_DATA_DIR/credentials.json",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the order as JSON")


def add_wait(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--wait`` and ``--timeout``."""
    parser.add_argument(
        "--wait", action="store_true", help=f"{what}, wait until the order is completed, failed or waiting"
    )
    add_timeout(parser, default=DEFAULT_WAIT_TIMEOUT)


def add_timeout(parser: argparse.ArgumentParser, *, default: float | None) -> None:
    shown = "no limit" if default is None else f"{default:g}"
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=default,
        metavar="SECONDS",
        help=f"give up waiting after this long (exit code 4; default {shown})",
    )
