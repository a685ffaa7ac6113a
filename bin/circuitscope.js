#!/usr/bin/env node
// In a checkout (src/ present) the TypeScript sources run through tsx, so `npm ci` is the only set-up step,
// and the `bench` command (which lives with the benchmarks in bench/, outside the library) is added. The
// published package has no src/: it runs the JavaScript compiled into dist/ at `npm pack`.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  const { main } = await import(source.href);
  await main({ extraCommands: [new URL("../bench/bench-cmd.ts", import.meta.url).href] });
} else {
  const { main } = await import("../dist/cli/main.js");
  await main({ extraCommands: [] });
}
