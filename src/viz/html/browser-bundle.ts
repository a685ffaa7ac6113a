import { fileURLToPath } from "node:url";
import { bundleIife } from "../../util/browser-bundle.ts";

const ENTRY = fileURLToPath(new URL("../browser/index.ts", import.meta.url));

let cached: string | undefined;

/**
 * The browser bundle (src/viz/browser + vega, vega-lite, vega-embed, vega-tooltip) as one minified IIFE
 * defining `window.circuitscopeViz`. Built with esbuild on first use (about a second) and kept for the
 * life of the process: no separate build step, and the HTML report and web app share it.
 */
export function browserBundleJs(): string {
  cached ??= bundleIife(ENTRY, "circuitscopeViz");
  return cached;
}
