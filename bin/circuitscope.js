#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npm ci` is the only set-up step (no build).
// The `bench` command lives with the benchmarks in bench/ (outside the library), so it is added here.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
await main({ extraCommands: [new URL("../bench/bench-cmd.ts", import.meta.url).href] });
