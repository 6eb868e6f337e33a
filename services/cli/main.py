"""``yiju``: the command line entry point (``yiju = "yiju.cli.main:main"``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from yiju.cli import exitcodes
from yiju.cli.commands import register_all
from yiju.cli.context import CliContext, ClientFactory, CliError, default_client_factory
from yiju.sdk import ConnectionFailed, RateLimited, WaitTimeout, YijuError
from yiju.sdk.config import default_base_url, package_version


def build_parser(
    on_broken_command: Callable[[str, BaseException], None] | None = None,
) -> argparse.ArgumentParser:
    """The full parser: global options plus every command module's subparsers."""
    parser = argparse.ArgumentParser(
        prog="yiju",
        description="One sentence in, a paid and fulfilled order out.",
        epilog="Exit codes: 0 ok, 1 order failed, 2 usage, 3 API error, 4 timeout.",
    )
    parser.add_argument("--version", action="version", version=f"yiju {package_version()}")
    parser.add_argument(
        "--api-url",
        metavar="URL",
        help="intent service base URL (default $YIJU_API_URL or http://127.0.0.1:${YIJU_HTTP_PORT:-8080})",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token to send (default: the --user's token from $YIJU_DATA_DIR/credentials.json)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_all(subparsers, on_broken_command or _report_broken_command)
    return parser


def _report_broken_command(name: str, exc: BaseException) -> None:
    print(f"yiju: warning: command module {name!r} failed to load: {exc!r}", file=sys.stderr)


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: ClientFactory | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``yiju`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    ``client_factory(base_url, token)`` makes the API client (tests pass one over ``httpx.MockTransport``);
    ``env`` replaces ``os.environ`` for configuration lookups.
    """
    env = os.environ if env is None else env
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        if exc.code is None:
            return exitcodes.OK
        return exc.code if isinstance(exc.code, int) else exitcodes.USAGE

    ctx = CliContext(
        api_url=(args.api_url or default_base_url(env)).rstrip("/"),
        env=env,
        client_factory=client_factory or default_client_factory,
        token=args.token,
    )
    try:
        return args.handler(args, ctx)
    except CliError as exc:
        ctx.error(str(exc))
        return exc.exit_code
    except WaitTimeout as exc:
        ctx.error(exc.message)
        return exitcodes.TIMEOUT
    except RateLimited as exc:
        wait = f"; retry after {exc.retry_after:g}s" if exc.retry_after is not None else ""
        ctx.error(f"{exc}{wait}")
        return exitcodes.API_ERROR
    except ConnectionFailed as exc:
        ctx.error(f"{exc.message} (is the platform running? try `make run`, or set --api-url)")
        return exitcodes.API_ERROR
    except YijuError as exc:
        ctx.error(str(exc))
        return exitcodes.API_ERROR
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
