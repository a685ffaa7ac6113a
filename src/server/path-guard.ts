/**
 * The one form of request target the explorer answers: an origin-form path ("/api/info", "/app.css") made
 * of letters, digits, "-", ".", "_", "~" and "/", then an optional query. Every other form is refused before
 * any route runs. Fastify's router decodes percent-encodings and strips "http://host" from absolute-form
 * targets, so a guard reading any other form would judge a different path than the one routed ("/%61pi/info"
 * is routed as "/api/info"); in canonical form the raw path and the routed path are the same text. No page
 * link or API address needs anything else in its path (job ids are hex, layers and neurons digits).
 */

export interface PathProblem {
  /** What is wrong, as a plural noun phrase: "Bad request path: <reason> are not allowed." */
  reason: string;
  fix: string;
}

const LINKS_FIX = "Use the page's own links; files are served only from the app's directory.";
/** The characters a canonical path is made of (RFC 3986 "unreserved", plus the separator). */
const CANONICAL_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** The path the router routes: the target up to its query (or fragment). Meaningful only for a canonical target. */
export function routedPath(rawUrl: string): string {
  return rawUrl.split(/[?#]/, 1)[0];
}

/** Why the request target is not in canonical form, with the fix; null when it is. */
export function pathProblem(rawUrl: string): PathProblem | null {
  if (!rawUrl.startsWith("/"))
    return {
      reason: "request targets that are not a path (an absolute URL such as http://host/api/info, or *)",
      fix: "Send the path alone, e.g. GET /api/info, and the server's name in the Host header (as browsers and curl do).",
    };
  if (rawUrl.includes("#"))
    return {
      reason: "fragments ('#') in the request target",
      fix: "Leave out the #fragment (browsers never send it) and encode a '#' in the query as %23.",
    };
  const path = routedPath(rawUrl);
  if (path.includes("//"))
    return {
      reason: "empty path segments ('//'; at the start, some clients read what follows as a host name)",
      fix: "Separate the path's parts with single slashes, e.g. /index.html or /api/info.",
    };
  if (/%2f|%5c|%00/i.test(path) || path.includes("\\") || path.includes("\0"))
    return { reason: "encoded slashes, backslashes or NUL bytes", fix: LINKS_FIX };
  // "%252e%252e" would decode to ".." one layer further down.
  if (/%25/.test(path)) return { reason: "double-encoded characters", fix: LINKS_FIX };
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return { reason: "invalid percent-encoding", fix: LINKS_FIX };
  }
  if (decoded.split("/").some((seg) => seg === ".." || seg === "."))
    return { reason: "'.' or '..' segments", fix: LINKS_FIX };
  if (decoded.split("/").some((seg) => seg.startsWith(".")))
    return { reason: "hidden (dot) files", fix: LINKS_FIX };
  if (path.includes("%"))
    return {
      reason: "percent-encoded characters in the path",
      fix: "Write the path's characters plainly (/api/info, not /%61pi/info); only the query string may be encoded.",
    };
  if (!CANONICAL_PATH.test(path))
    return {
      reason: "characters other than letters, digits, '-', '.', '_', '~' and '/' in the path",
      fix: LINKS_FIX,
    };
  return null;
}
