import { buildSync } from "esbuild";

/**
 * Bundles a browser entry point (and what it imports, e.g. vega) into one minified IIFE string with
 * esbuild, in memory: pages stay self-contained and there is no separate build step.
 */
export function bundleIife(entry: string, globalName?: string): string {
  const result = buildSync({
    entryPoints: [entry],
    bundle: true,
    format: "iife",
    ...(globalName ? { globalName } : {}),
    platform: "browser",
    target: "es2020",
    minify: true,
    write: false,
    legalComments: "none",
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}
