"""Exit codes of the ``yiju`` command (part of its interface: scripts rely on them)."""

from __future__ import annotations

OK = 0
"""Success: the order COMPLETED or waits for confirmation, was accepted (no --wait), or was shown."""
ORDER_FAILED = 1
"""With --wait (or watch): the order ended in a failure status (REJECTED, FAILED, CANCELLED, ...)."""
USAGE = 2
"""Bad command line."""
API_ERROR = 3
"""The API answered with an error, or could not be reached; the message went to stderr."""
TIMEOUT = 4
"""The order did not reach a terminal or waiting status in time."""
INTERRUPTED = 130
"""Ctrl-C."""
