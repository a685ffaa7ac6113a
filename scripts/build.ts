/**
 * Builds the published package into dist/: the library and CLI compiled to ES modules with declarations
 * (tsconfig.build.json), the explorer's static files and worker entry, and the browser bundles prebuilt
 * so an installed package needs neither tsx nor esbuild. Run by `npm run build` and at `npm pack`.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXPLORER_SCRIPT } from "../src/server/front-end-bundle.ts";
import { bundleIife } from "../src/util/browser-bundle.ts";
import { VIZ_BROWSER_SCRIPT } from "../src/viz/html/browser-bundle.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = join(root, "dist");
const marker = join(dist, ".circuitscope-build");

if (existsSync(dist)) {
  if (!existsSync(marker)) {
    throw new Error(`${dist} exists but was not written by this build script: move it away and build again`);
  }
  rmSync(dist, { recursive: true });
}
execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.build.json")], { stdio: ["ignore", 2, 2] });
cpSync(join(root, "src/server/public"), join(dist, "server/public"), { recursive: true });
cpSync(join(root, "src/server/model-worker-boot.mjs"), join(dist, "server/model-worker-boot.mjs"));
mkdirSync(join(dist, "assets"), { recursive: true });
for (const script of [VIZ_BROWSER_SCRIPT, EXPLORER_SCRIPT]) {
  writeFileSync(join(dist, "assets", script.asset), bundleIife(script));
}
writeFileSync(marker, "dist/ is written by scripts/build.ts; it may delete and rebuild this folder.\n");
process.stderr.write(`built ${dist}\n`);
