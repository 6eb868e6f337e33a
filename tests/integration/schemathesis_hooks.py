"""Schemathesis hooks for tests/integration/test_http_contract.py (`st run` loads them through
SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import json

import schemathesis
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

KEY_REUSED = "idempotency_conflict"


def _error_code(response: Response) -> str:
    try:
        return str(json.loads(response.content)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


@schemathesis.check
def positive_data_accepted_unless_key_reused(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """schemathesis' positive_data_acceptance (a request the schema allows is not refused), except for the
    one refusal no schema can rule out, because it depends on an earlier request: an idempotency key
    already used with another body (422 idempotency_conflict, documented)."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 422 and _error_code(response) == KEY_REUSED:
            return None
        raise
