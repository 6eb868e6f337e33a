"""What every command gets besides its arguments: output consoles and a way to make an API client."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from yiju.cli.credentials import CredentialsError, load_token
from yiju.sdk import YijuClient

ClientFactory = Callable[[str, str | None], YijuClient]
"""Makes a client from (base_url, token); tests pass one that uses ``httpx.MockTransport``."""

Handler = Callable[[argparse.Namespace, "CliContext"], int]
"""A command's ``run(args, ctx)``: returns the exit code (see :mod:`yiju.cli.exitcodes`)."""


def default_client_factory(base_url: str, token: str | None) -> YijuClient:
    return YijuClient(base_url, token=token)


class CliError(Exception):
    """Stop the command with a message on stderr and an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class CliContext:
    """Shared state of one ``yiju`` invocation."""

    api_url: str
    env: Mapping[str, str]
    client_factory: ClientFactory = default_client_factory
    token: str | None = None
    """An explicit token (``--token``); otherwise the user's token from the credentials file."""
    out: Console = field(default_factory=lambda: Console(file=sys.stdout, highlight=False))
    err: Console = field(default_factory=lambda: Console(file=sys.stderr, highlight=False))

    def user(self, given: str | None) -> str | None:
        """``--user``, else ``$YIJU_USER``."""
        return given or self.env.get("YIJU_USER") or None

    def client(self, user: str | None = None) -> YijuClient:
        """A client for ``user`` (use it as a context manager)."""
        token = self.token
        if token is None:
            try:
                token = load_token(user, self.env)
            except CredentialsError as exc:
                self.warn(f"{exc}; continuing without a token")
        return self.client_factory(self.api_url, token)

    def print_json(self, data: Any, *, compact: bool = False) -> None:
        """JSON on stdout, unescaped (``ensure_ascii=False``), pretty unless ``compact``."""
        if compact:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        else:
            text = json.dumps(data, ensure_ascii=False, indent=2)
        self.out.file.write(text + "\n")
        self.out.file.flush()

    def warn(self, message: str) -> None:
        self.err.print(f"yiju: warning: {message}", markup=False, highlight=False)

    def error(self, message: str) -> None:
        self.err.print(f"yiju: error: {message}", markup=False, highlight=False, soft_wrap=True)
