#!/usr/bin/env bash
# What tests/browser needs, installed idempotently (a no-op when everything is there):
#   - Debian's chromium and chromium-driver (same version, from the same archive; nothing is downloaded
#     at test time: Selenium is pointed at /usr/bin/chromedriver, so Selenium Manager never runs);
#   - a small CJK font, so screenshots show Chinese text;
#   - Selenium, into the project's virtualenv.
# Usage: bash infra/browser/setup.sh [PYTHON]   (default: .venv/bin/python; apt-get needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${1:-.venv/bin/python}"
SELENIUM_VERSION="4.51.0"
PACKAGES=(chromium chromium-driver fonts-wqy-microhei)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
elif ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "infra/browser/setup.sh: install chromium and chromedriver (not a Debian system)" >&2
  exit 1
fi

if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "infra/browser/setup.sh: root is needed to apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "== apt-get install ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$PY" ]; then
  echo "infra/browser/setup.sh: no virtualenv python at $PY (run make venv first)" >&2
  exit 1
fi
if ! "$PY" -c "import sys, selenium; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  echo "== pip install selenium==$SELENIUM_VERSION"
  "$PY" -m pip install -q "selenium==$SELENIUM_VERSION"
fi
echo "browser tests: $(chromedriver --version | cut -d' ' -f1-2), selenium $SELENIUM_VERSION"
