import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface BrowserScript {
  /** File name of the bundle prebuilt into the published package's `dist/assets/`. */
  asset: string;
  /** The TypeScript entry point, bundled on the fly in a checkout. */
  entry: URL;
  /** Global the IIFE assigns its exports to, if any. */
  globalName?: string;
}

/** Where prebuilt bundles live: `dist/assets/` in the package; absent in a checkout (`src/assets/`). */
const ASSETS = new URL("../assets/", import.meta.url);

/**
 * A browser script as one minified IIFE string: the bundle prebuilt at `npm pack` when it exists,
 * otherwise esbuild bundles the entry (and what it imports, e.g. vega) in memory, so a checkout needs no
 * build step. esbuild is loaded only then: it is a development dependency.
 */
export function browserScript(script: BrowserScript): string {
  const prebuilt = new URL(script.asset, ASSETS);
  if (existsSync(prebuilt)) return readFileSync(prebuilt, "utf8");
  return bundleIife(script);
}

/** esbuild's bundle of `script.entry`; the build script writes these into `dist/assets/`. */
export function bundleIife(script: BrowserScript): string {
  const { buildSync } = createRequire(import.meta.url)("esbuild") as typeof import("esbuild");
  const result = buildSync({
    entryPoints: [fileURLToPath(script.entry)],
    bundle: true,
    format: "iife",
    ...(script.globalName ? { globalName: script.globalName } : {}),
    platform: "browser",
    target: "es2020",
    minify: true,
    write: false,
    legalComments: "none",
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}
