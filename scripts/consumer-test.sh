#!/usr/bin/env bash
# The package as a user gets it: packs the tarball (which builds dist/), installs it into an empty
# project (dependencies from the npm cache when present), type-checks a TypeScript consumer against the
# shipped declarations, runs a forward pass and a patching sweep through the public API, and the CLI.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$repo"
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
echo "packed $tarball ($(du -k "$work/$tarball" | cut -f1) KiB, $(tar -tzf "$work/$tarball" | wc -l) files)"
if tar -tzf "$work/$tarball" | grep -E '^package/(src|test|scripts|bench)/' >/dev/null; then
  echo "consumer-test: the tarball holds development files:" >&2
  tar -tzf "$work/$tarball" | grep -E '^package/(src|test|scripts|bench)/' | head >&2
  exit 1
fi

mkdir "$work/app"
cd "$work/app"
echo '{ "name": "consumer", "version": "1.0.0", "private": true, "type": "module" }' > package.json
# onnxruntime-node's install script downloads CUDA binaries when it sees nvcc; the CPU binaries are in
# the package, so skip it, as docs/install.md tells users to.
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --prefer-offline --loglevel=error "$work/$tarball" "@types/node@^20" >/dev/null
cp "$repo/scripts/consumer/consumer.mjs" "$repo/scripts/consumer/consumer.ts" "$repo/scripts/consumer/tsconfig.json" .

"$repo/node_modules/.bin/tsc" -p tsconfig.json
echo "consumer.ts type-checks against the shipped declarations"
node -e 'import("circuitscope").then((m) => { if (typeof m.HookedTransformer !== "function") process.exit(1); console.log("import(\"circuitscope\").HookedTransformer:", typeof m.HookedTransformer); })'
node consumer.mjs
version=$(npx --no-install circuitscope --version)
[ "$version" = "$(node -p "require('$repo/package.json').version")" ] || { echo "--version printed '$version'" >&2; exit 1; }
echo "npx circuitscope --version: $version"
npx --no-install circuitscope predict --model "${CONSUMER_MODEL:-stories260k}" "Once upon a time"
echo "consumer test passed"
