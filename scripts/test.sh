#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
chromium_path="${CHROMIUM_PATH:-}"
if [ -z "$chromium_path" ] && ! command -v chromium >/dev/null 2>&1; then
  # Browser tests drive Debian's Chromium through playwright-core (no browser download).
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    cat >&2 <<'EOF'
scripts/test.sh: error: the browser tests need Chromium, which is not installed, and this user cannot install
it (not root, no password-less sudo). Install it once as an administrator:
    sudo apt-get update && sudo apt-get install -y chromium
or point the tests at an existing Chromium or Chrome binary:
    CHROMIUM_PATH=/path/to/chromium bash scripts/test.sh
EOF
    exit 1
  fi
  echo "Installing Debian's chromium for the browser tests..."
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm test
