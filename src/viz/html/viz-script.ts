/**
 * How a page gets the viz browser bundle (~0.9 MB): inlined, so one `--html FILE` is self-contained; or, for
 * a set of pages written into one directory (`graph --feature-pages DIR`, a study's report), from one shared
 * file `circuitscope-viz.<hash>.js` in that directory, loaded by a relative `<script src>` (which works from
 * file:// and over http). The file is named for its content, so pages of one version never load another's.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { writeFileAtomic } from "../../util/atomic-write.ts";
import { escapeXml as escapeHtml } from "../views/svg-parts.ts";
import { browserBundleJs } from "./browser-bundle.ts";

/** A page's reference to the shared bundle: its URL relative to the page, and the nonce its CSP allows. */
export interface SharedVizScript {
  /** Relative URL from the page to the bundle file, "/"-separated. */
  src: string;
  /**
   * Allows exactly the page's own two script elements under a CSP (`script-src 'nonce-…'`). A hash source
   * would need the `integrity` attribute, which Chromium refuses on file:// (no CORS there), and `'self'`
   * there allows every local file.
   */
  nonce: string;
}

/** The shared bundle file's name prefix; the rest is the content hash and `.js`. */
export const SHARED_VIZ_PREFIX = "circuitscope-viz.";

/** The first 16 hex digits of the bundle's SHA-256: its file name and its pages' nonce. */
function bundleHash(js: string): string {
  return createHash("sha256").update(js).digest("hex").slice(0, 16);
}

/** The shared bundle's file name, e.g. `circuitscope-viz.0123456789abcdef.js`. */
export function sharedVizFileName(): string {
  return `${SHARED_VIZ_PREFIX}${bundleHash(browserBundleJs())}.js`;
}

/**
 * Writes the bundle into `dir` once (atomically) for the pages of a set, and returns a function giving the
 * reference for a page at `pagePath` (anywhere under `dir`). A file of that name already there is kept when
 * it holds this bundle, and is an error when it holds anything else: circuitscope never overwrites a file it
 * cannot show it wrote.
 */
export function writeSharedVizScript(dir: string): (pagePath: string) => SharedVizScript {
  const js = browserBundleJs();
  const hash = bundleHash(js);
  const path = join(dir, `${SHARED_VIZ_PREFIX}${hash}.js`);
  if (!existsSync(path)) writeFileAtomic(path, js);
  else if (readFileSync(path, "utf8") !== js) {
    throw new Error(
      `${path} exists and is not circuitscope's viz script (its content does not match its name): nothing was ` +
        "overwritten. Move that file away, or write the pages into another directory.",
    );
  }
  return (pagePath) => ({
    src: relative(dirname(pagePath), path).split(sep).map(encodeURIComponent).join("/"),
    nonce: hash,
  });
}

/** Inline JS must not contain `</script`; in strings, regexes and comments `<\/` means the same. */
export function inlineScript(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

/**
 * The page's script elements: the bundle (inlined, or the shared file) and then `mount`, the inline call that
 * draws the page. With a shared bundle both carry its nonce.
 */
export function vizScriptTags(mount: string, shared?: SharedVizScript): string {
  if (!shared)
    return `<script>${inlineScript(browserBundleJs())}</script>\n<script>${inlineScript(mount)}</script>`;
  const nonce = `nonce="${escapeHtml(shared.nonce)}"`;
  return `<script ${nonce} src="${escapeHtml(shared.src)}"></script>\n<script ${nonce}>${inlineScript(mount)}</script>`;
}
