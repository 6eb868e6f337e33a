#!/usr/bin/env bash
# Builds Jaeger v2 (the OpenTelemetry-Collector-based all-in-one: OTLP in, query API and UI out) into
# .tools/bin/jaeger (git-ignored), from the Go module proxy only. Idempotent: does nothing when
# .tools/bin/jaeger.version says the binary there was built from the pinned module version.
#
#   infra/jaeger/get-jaeger.sh                                  # -> .tools/bin/jaeger
#   JAEGER_MODULE_VERSION=v1.75.0 infra/jaeger/get-jaeger.sh    # another pin
#
# Jaeger v2 is released from the same tags as the v1 line (v1.76.0 = v2.13.0, see its CHANGELOG.md),
# so the Go module version is v1.x. `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0`
# refuses the module (its go.mod has a replace directive), so this downloads the module through the
# proxy (`go mod download`) and builds cmd/jaeger with the module as the main module, as upstream does.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODULE="github.com/jaegertracing/jaeger"
VERSION="${JAEGER_MODULE_VERSION:-v1.76.0}"
DEST="${ROOT}/.tools/bin/jaeger"
STAMP="${DEST}.version"

if [[ -x "$DEST" && -f "$STAMP" && "$(cat "$STAMP")" == "$MODULE@$VERSION" ]]; then
  echo "jaeger ($MODULE@$VERSION) already at ${DEST#"$ROOT"/}"
  exit 0
fi
command -v go >/dev/null || { echo "get-jaeger.sh: Go >= 1.24 is needed (https://go.dev/dl/)" >&2; exit 1; }

began=$(date +%s)
echo "get-jaeger.sh: downloading $MODULE@$VERSION (GOPROXY=$(go env GOPROXY)) ..."
src="$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -f "$src/go.mod" ]] || { echo "get-jaeger.sh: go mod download gave no source dir for $MODULE@$VERSION" >&2; exit 1; }
# The Jaeger v2 version paired with this tag, from the CHANGELOG heading "v1.76.0 / v2.13.0 (date)".
v2="$(sed -n "s/^${VERSION//./\\.} \/ \(v2\.[0-9.]*\).*/\1/p" "$src/CHANGELOG.md" | head -n 1)"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
pkg="$MODULE/internal/version"

echo "get-jaeger.sh: building Jaeger ${v2:-v2} (cmd/jaeger) ..."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The module cache is read-only and has no .git: build from there without VCS stamping, statically.
(cd "$src" && CGO_ENABLED=0 go build -buildvcs=false -trimpath -o "$tmp/jaeger" \
  -ldflags "-s -w -X $pkg.latestVersion=${v2:-$VERSION} -X $pkg.date=$build_date" ./cmd/jaeger)

mkdir -p "$(dirname "$DEST")"
mv -f "$tmp/jaeger" "$DEST"
echo "$MODULE@$VERSION" > "$STAMP"
echo "get-jaeger.sh: installed Jaeger ${v2:-v2} ($MODULE@$VERSION) at ${DEST#"$ROOT"/} in $(( $(date +%s) - began ))s"
