/**
 * Refuses request paths that try to leave the app's directories before any route sees them: `..`
 * segments (plain or percent-encoded), double encoding, encoded slashes or backslashes, and NUL bytes. @fastify/static
 * also confines files to its root; this makes every such attempt a clear 400 instead of a 403/404 mix.
 */
import type { FastifyInstance } from "fastify";
import { ApiError } from "./api-error.ts";

export function badPathReason(rawUrl: string): string | null {
  const path = rawUrl.split("?")[0];
  if (/%2f|%5c|%00/i.test(path) || path.includes("\\") || path.includes("\0"))
    return "encoded slashes, backslashes or NUL bytes";
  // No page URL holds a percent sign; "%252e%252e" would decode to ".." one layer further down.
  if (/%25/.test(path)) return "double-encoded characters";
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return "invalid percent-encoding";
  }
  if (decoded.split("/").some((seg) => seg === ".." || seg === ".")) return "'.' or '..' segments";
  if (decoded.split("/").some((seg) => seg.startsWith("."))) return "hidden (dot) files";
  return null;
}

export function installPathGuard(app: FastifyInstance): void {
  app.addHook("onRequest", async (request) => {
    const reason = badPathReason(request.raw.url ?? "/");
    if (reason)
      throw new ApiError(
        400,
        `Bad request path: ${reason} are not allowed.`,
        "Use the page's own links; files are served only from the app's directory.",
      );
  });
}
