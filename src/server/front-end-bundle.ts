import { fileURLToPath } from "node:url";
import { bundleIife } from "../util/browser-bundle.ts";

const ENTRY = fileURLToPath(new URL("./web/main.ts", import.meta.url));

let cached: Promise<string> | undefined;

/**
 * The page's script (src/server/web + the src/viz browser components + vega) as one IIFE, built by
 * esbuild in memory when the server starts (a second or two) and kept for the life of the process:
 * `npm ci` is the only set-up step.
 */
export function frontEndBundleJs(): Promise<string> {
  cached ??= Promise.resolve().then(() => bundleIife(ENTRY));
  return cached;
}
