import { type BrowserScript, browserScript } from "../util/browser-bundle.ts";

/** The page's script: src/server/web + the src/viz browser components + vega. */
export const EXPLORER_SCRIPT: BrowserScript = {
  asset: "explorer.js",
  entry: new URL("./web/main.ts", import.meta.url),
};

let cached: Promise<string> | undefined;

/**
 * The page's script as one IIFE (built by esbuild when the server starts in a checkout, prebuilt in the
 * package), kept for the life of the process.
 */
export function frontEndBundleJs(): Promise<string> {
  cached ??= Promise.resolve().then(() => browserScript(EXPLORER_SCRIPT));
  return cached;
}
