/** Starts the explorer on the fixture model (or another), listening on 127.0.0.1 at a free port. */
import type { Page } from "playwright-core";
import { TOKEN_HEADER } from "../../src/server/access-guard.ts";
import { createServer, type ExplorerServer, type ServerOptions } from "../../src/server/app.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { referenceJson } from "../helpers/reference.ts";

export interface FixtureServer {
  server: ExplorerServer;
  /** http://127.0.0.1:PORT */
  base: string;
  /** The page's address as `circuitscope serve` prints it (`/?token=...`), plus any other query of `url`. */
  withToken(url?: string): string;
  /** fetch(base + path) with the session token header, as the page sends it. */
  api(path: string, init?: RequestInit): Promise<Response>;
}

/** `model`: the fixture by default, or any model name or directory (e.g. the bundled "stories260k"). */
export async function startFixtureServer(
  opts: Omit<ServerOptions, "model"> = {},
  model: string = FIXTURE_DIR,
): Promise<FixtureServer> {
  const server = await createServer({
    model: { model, backend: "onnx", process: true },
    ...opts,
  });
  const base = await server.app.listen({ port: 0, host: "127.0.0.1" });
  const token = server.token;
  return {
    server,
    base,
    withToken: (url = `${base}/`) => {
      const u = new URL(url);
      if (token !== null) u.searchParams.set("token", token);
      return u.toString();
    },
    api: (path, init = {}) =>
      fetch(base + path, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), ...(token ? { [TOKEN_HEADER]: token } : {}) },
      }),
  };
}

/**
 * An address fills the page's form but runs nothing: once the page is wired (body[data-ready]), click the
 * panel's button as the user would.
 */
export async function runFromAddress(page: Page, button: string): Promise<void> {
  await page.waitForSelector("body[data-ready]");
  await page.click(button);
}

/**
 * The circuit panel run as a user would, on the fixture's first prompt pair with EAP scores: fills the
 * answer/wrong tokens (by address) and the prompts, clicks "Find circuit" and waits for the drawn graph.
 */
export async function findCircuitInPanel(page: Page, fx: FixtureServer): Promise<void> {
  const { clean, corrupted, answer, wrong } = referenceJson.prompts;
  await page.goto(fx.withToken(`${fx.base}/?${new URLSearchParams({ answer, wrong })}`));
  await page.fill("#clean", clean[0]);
  await page.fill("#corrupted", corrupted[0]);
  await page.selectOption("#circuit-method", "eap");
  await page.click("#run-circuit");
  await page.waitForSelector("#circuit-out[data-ready] svg.cs-circuit");
}

/**
 * The graph panel run as a user would (a server started with --transcoders): opens the explorer, types
 * `prompt` into the panel's form, clicks "Compute the graph of this prompt" and waits for the drawn graph.
 */
export async function computeGraphInPanel(page: Page, fx: FixtureServer, prompt: string): Promise<void> {
  await page.goto(fx.withToken(`${fx.base}/`));
  await page.waitForSelector("body[data-ready]");
  await page.fill("#graph-prompt", prompt);
  await page.click("#run-graph");
  await page.waitForSelector("#graph-out[data-ready] svg.cs-graph");
}
