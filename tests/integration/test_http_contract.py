"""The HTTP contract says what the API does: schemathesis runs every operation of a live platform's
/openapi.json (its examples, boundary and negative cases, fuzzed cases and stateful sequences) with a
valid token, and every answer must be documented: status, content type, headers and body schema
(`st run --checks all`), with 0 failures.

The platform is one of its own (the run opens orders for its user) with the demo endpoints on (so that
they are covered too) and a rate limit no run reaches: 429 is documented for every operation behind a
credential, but a run that spends its requests on 429s tests nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, platform_on
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
USER = "u-1004"
MAX_EXAMPLES = 20  # per operation and phase: ~600 cases, 30-60 s on a busy 2-core machine
RUN_TIMEOUT_S = 420.0
HOOKS = "tests.integration.schemathesis_hooks"
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_accepted_unless_key_reused",  # from HOOKS: proves they were loaded
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
}


@pytest.fixture(scope="module")
async def contract_platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    env = {
        "YIJU_EDGE_RATE_PER_USER_PER_S": "100000",
        "YIJU_EDGE_RATE_BURST": "100000",
        "YIJU_DEMO_TOKENS": "1",
        "YIJU_LOG_LEVEL": "ERROR",
    }
    plat = platform_on(shared_kafka, tmp_path_factory.mktemp("contract"), extra_env=env)
    try:
        await plat.start(ready_timeout=90)
        yield plat
    finally:
        await plat.stop_all()


async def schemathesis_run(platform: LocalPlatform, workdir: Path) -> tuple[dict[str, Any], set[str], str]:
    """`st run` over every operation (deterministic generation): its JSON report, the checks it ran and
    its output."""
    report, events = workdir / "report.json", workdir / "events.ndjson"
    argv = [
        *("run", f"{platform.api_url}/openapi.json"),
        *("--header", f"Authorization: Bearer {platform.token(USER)}"),
        *("--checks", "all"),
        # Replaced by the hooks' version, which knows that reusing an idempotency key for another body
        # is refused however valid that body is (422 idempotency_conflict, documented).
        *("--exclude-checks", "positive_data_acceptance"),
        *("--max-examples", str(MAX_EXAMPLES)),
        "--generation-deterministic",
        *("--workers", "1"),
        *("--request-timeout", "60"),  # an order stream lasts until the order settles
        *("--report", "json,ndjson", "--report-json-path", str(report), "--report-ndjson-path", str(events)),
        *("--no-color", "--output-truncate", "false"),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(REPO), "NO_PROXY": "*"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        *argv,
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    output = out.decode(errors="replace")
    assert report.is_file(), f"schemathesis wrote no report (exit {proc.returncode}):\n{output}"
    return json.loads(report.read_text()), checks_run(events), output


def checks_run(events: Path) -> set[str]:
    """The names of the checks schemathesis ran, from its NDJSON event log."""
    names: set[str] = set()
    for line in events.read_text().splitlines():
        for event in json.loads(line).values():
            recorder = event.get("recorder") if isinstance(event, dict) else None
            for results in ((recorder or {}).get("checks") or {}).values():
                names.update(result["name"] for result in results)
    return names


async def test_every_operation_answers_as_its_openapi_document_says(
    contract_platform: LocalPlatform, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=contract_platform.api_url, trust_env=False) as client:
        document = (await client.get("/openapi.json")).json()
    operations = sum(len(item) for item in document["paths"].values())

    report, checks, output = await schemathesis_run(contract_platform, tmp_path)

    assert report["failures"] == [] and report["errors"] == [], output
    assert report["operations"]["tested"] == report["operations"]["total"] == operations, output
    assert report["test_cases"]["generated"] >= operations * MAX_EXAMPLES, output
    assert checks >= CHECKS, f"not run: {CHECKS - checks}"
    assert report["exit_code"] == 0, output
