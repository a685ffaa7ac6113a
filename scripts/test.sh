#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  # Browser tests drive Debian's Chromium through playwright-core (no browser download).
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm test
