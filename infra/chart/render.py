"""`make chart`: lint charts/yiju and render it for each profile into build/chart/<profile>/.

Profiles: default (values.yaml alone), dev (values-dev.yaml), prod (values-prod.yaml). Each profile's
directory gets manifest.yaml (the whole `helm template` stream) and one file per resource under
resources/ (<kind>-<name>.yaml) for reviewing diffs. The chart tests (tests/chart) use the same
functions, so what `make chart` writes is what the tests check.

Helm is found at $HELM, .tools/bin/helm or on PATH; with --get-helm (or ensure_helm(install=True)) a
missing one is installed by infra/chart/get-helm.sh.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "yiju"
OUT = ROOT / "build" / "chart"
GET_HELM = ROOT / "infra" / "chart" / "get-helm.sh"
LOCAL_HELM = ROOT / ".tools" / "bin" / "helm"

# The Kubernetes version the chart is rendered for (Capabilities.KubeVersion) and validated against
# (kubernetes-validate ships its schemas); helm v4.1 is built against client-go 1.35.
KUBE_VERSION = "1.35.0"
RELEASE = "yiju"
NAMESPACE = "yiju"
PROFILES: dict[str, list[str]] = {
    "default": [],
    "dev": ["values-dev.yaml"],
    "prod": ["values-prod.yaml"],
}
MIN_HELM = (3, 14)


class HelmError(RuntimeError):
    """helm exited non-zero; the message holds its output."""


def _helm_version(path: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [path, "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    return (int(match[1]), int(match[2])) if match else None


def find_helm() -> str | None:
    """The first usable helm (>= 3.14): $HELM, .tools/bin/helm, then PATH."""
    candidates = [os.environ.get("HELM"), str(LOCAL_HELM), shutil.which("helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            version = _helm_version(candidate)
            if version and version >= MIN_HELM:
                return candidate
    return None


def ensure_helm(install: bool = True) -> str | None:
    """find_helm(), installing it with get-helm.sh first when it is missing and install is set."""
    found = find_helm()
    if found or not install:
        return found
    result = subprocess.run(["bash", str(GET_HELM)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        return None
    return find_helm()


def helm(helm_bin: str, *args: str) -> str:
    result = subprocess.run([helm_bin, *args], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def values_args(profile: str, sets: list[str] | None = None) -> list[str]:
    args: list[str] = []
    for name in PROFILES[profile]:
        args += ["-f", str(CHART / name)]
    for item in sets or []:
        args += ["--set", item]
    return args


def lint(helm_bin: str, profile: str, sets: list[str] | None = None) -> str:
    """`helm lint --strict` (warnings fail too) for one profile."""
    return helm(
        helm_bin,
        "lint",
        str(CHART),
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        "--namespace",
        NAMESPACE,
        *values_args(profile, sets=sets),
    )


def template(helm_bin: str, profile: str, sets: list[str] | None = None) -> str:
    return helm(
        helm_bin,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *values_args(profile, sets=sets),
    )


def notes(helm_bin: str, profile: str) -> str:
    """NOTES.txt as `helm install` prints it (a client-side dry run; no cluster needed)."""
    out = helm(
        helm_bin,
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        *values_args(profile),
    )
    return out.partition("\nNOTES:\n")[2]


def parse(stream: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def write(profile: str, stream: str, out: Path = OUT) -> Path:
    target = out / profile
    if target.exists():
        shutil.rmtree(target)
    (target / "resources").mkdir(parents=True)
    (target / "manifest.yaml").write_text(stream)
    for doc in parse(stream):
        name = f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        (target / "resources" / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="*", metavar="PROFILE", help=f"default: {' '.join(PROFILES)}")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--get-helm", action="store_true", help="install helm with get-helm.sh if missing")
    parser.add_argument("--no-lint", action="store_true")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.profiles) - set(PROFILES))
    if unknown:
        parser.error(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    profiles = args.profiles or list(PROFILES)

    helm_bin = ensure_helm(install=args.get_helm)
    if not helm_bin:
        print("helm not found: run infra/chart/get-helm.sh (or pass --get-helm)", file=sys.stderr)
        return 2
    try:
        for profile in profiles:
            if not args.no_lint:
                lint(helm_bin, profile)
            stream = template(helm_bin, profile)
            target = write(profile, stream, args.out)
            kinds: dict[str, int] = {}
            for doc in parse(stream):
                kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
            summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
            print(f"{profile}: {shown}: {summary}")
    except HelmError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
