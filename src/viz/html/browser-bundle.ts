import { type BrowserScript, browserScript } from "../../util/browser-bundle.ts";

/** src/viz/browser + vega, vega-lite, vega-embed, vega-tooltip, defining `window.circuitscopeViz`. */
export const VIZ_BROWSER_SCRIPT: BrowserScript = {
  asset: "viz-browser.js",
  entry: new URL("../browser/index.ts", import.meta.url),
  globalName: "circuitscopeViz",
};

let cached: string | undefined;

/**
 * The browser bundle as one minified IIFE (about a second to build in a checkout, prebuilt in the
 * package), kept for the life of the process: the HTML report and web app share it.
 */
export function browserBundleJs(): string {
  cached ??= browserScript(VIZ_BROWSER_SCRIPT);
  return cached;
}
