#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the tests use: Chromium for the browser tests (driven through playwright-core, no browser
# download), and Slurm with munge for the scale-out test, which starts a one-machine cluster itself (optional:
# where they cannot be installed, that test says it is skipped and why).
needed=()
optional=()
if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then needed+=(chromium); fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then optional+=(slurm-wlm munge); fi
if [ ${#needed[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ]; then
  as_root=""
  if [ "$(id -u)" -eq 0 ]; then
    as_root="root"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo"
  fi
  if [ -z "$as_root" ] && [ ${#needed[@]} -gt 0 ]; then
    cat >&2 <<'EOF'
scripts/test.sh: error: the browser tests need Chromium, which is not installed, and this user cannot install
it (not root, no password-less sudo). Install it once as an administrator:
    sudo apt-get update && sudo apt-get install -y chromium
or point the tests at an existing Chromium or Chrome binary:
    CHROMIUM_PATH=/path/to/chromium bash scripts/test.sh
EOF
    exit 1
  fi
  if [ -n "$as_root" ]; then
    sudo_cmd=()
    [ "$as_root" = "sudo" ] && sudo_cmd=(sudo -n)
    echo "Installing Debian packages for the tests: ${needed[*]-} ${optional[*]-}"
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" "${optional[@]}" >/dev/null
  fi
fi
npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm test
