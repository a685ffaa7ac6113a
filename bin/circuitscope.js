#!/usr/bin/env node
// In a checkout (src/ present) the TypeScript sources run through tsx, so `npm ci` is the only set-up step;
// the published package has no src/ and runs the JavaScript compiled into dist/ at `npm pack`.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import("../dist/cli/main.js");
}
