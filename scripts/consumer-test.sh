#!/usr/bin/env bash
# The package as a user gets it: packs the tarball (which builds dist/), installs it into an empty
# project (dependencies from the npm cache when present) and checks the install printed no warning,
# type-checks a TypeScript consumer against the shipped declarations, runs a forward pass and a patching
# sweep through the public API, runs every code example of the docs, and runs the CLI.
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
# Installed as docs/install.md tells users to: --ignore-scripts, because onnxruntime-node's install script
# downloads CUDA binaries from outside the npm registry when it sees nvcc (the CPU binaries are in the
# package), and no other dependency's install script is needed. At npm's default log level the install must
# print no warning at all: an EBADENGINE on Node 20 (a dependency wanting a newer Node) fails here.
npm install --ignore-scripts --no-audit --no-fund --prefer-offline "$work/$tarball" "@types/node@^20" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  exit 1
}
if grep -i -E 'warn|EBADENGINE|deprecated' "$work/install.log" >/dev/null; then
  echo "consumer-test: npm install printed warnings on Node $(node --version):" >&2
  cat "$work/install.log" >&2
  exit 1
fi
echo "npm install printed no warning on Node $(node --version); node_modules: $(du -sm node_modules | cut -f1) MB"
cp "$repo/scripts/consumer/consumer.mjs" "$repo/scripts/consumer/consumer.ts" "$repo/scripts/consumer/tsconfig.json" .

"$repo/node_modules/.bin/tsc" -p tsconfig.json
echo "consumer.ts type-checks against the shipped declarations"
node -e 'import("circuitscope").then((m) => { if (typeof m.HookedTransformer !== "function") process.exit(1); console.log("import(\"circuitscope\").HookedTransformer:", typeof m.HookedTransformer); })'
node consumer.mjs
# Every ts/js example of README.md and docs/*.md, type-checked against the shipped declarations and run
# against the installed package; stated values and marked output compared (scripts/consumer/doc-examples.ts).
(cd "$repo" && node --import tsx scripts/consumer/run-doc-examples.ts "$work/app")
version=$(npx --no-install circuitscope --version)
[ "$version" = "$(node -p "require('$repo/package.json').version")" ] || { echo "--version printed '$version'" >&2; exit 1; }
echo "npx circuitscope --version: $version"
npx --no-install circuitscope predict --model "${CONSUMER_MODEL:-stories260k}" "Once upon a time"
echo "consumer test passed"
