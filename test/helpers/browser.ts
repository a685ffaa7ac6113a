/**
 * Shared headless-browser set-up for tests (and scripts/screenshots.ts): Debian's chromium driven by
 * playwright-core, no browser download. A missing chromium is a failure with the fix, never a skip.
 */
import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: browser tests need it. Install it with ` +
        "`apt-get update && apt-get install -y chromium` (scripts/test.sh does this), or set CHROMIUM_PATH.",
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** console.error messages and uncaught page errors, in order. */
  errors: string[];
  /** Every request URL the page attempted that was not file:, data: or blob:. */
  networkAttempts: string[];
}

/**
 * A page whose context is offline and routes every request: non-local ones are recorded and aborted, so a
 * test can assert that nothing tried to reach the network.
 */
export async function openWatchedPage(
  browser: Browser,
  viewport = { width: 1200, height: 900 },
): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport });
  await context.setOffline(true);
  const networkAttempts: string[] = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (/^(file|data|blob):/.test(url)) return route.continue();
    networkAttempts.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  const errors: string[] = [];
  collectPageErrors(page, errors);
  page.on("request", (req) => {
    const url = req.url();
    if (!/^(file|data|blob):/.test(url) && !networkAttempts.includes(url)) networkAttempts.push(url);
  });
  return { context, page, errors, networkAttempts };
}

/** Appends every console error and uncaught page exception of `page` to `into`. */
export function collectPageErrors(page: Page, into: string[]): void {
  page.on("console", (msg) => {
    if (msg.type() === "error") into.push(msg.text());
  });
  page.on("pageerror", (err) => into.push(err.message));
}
