/**
 * Who may talk to the explorer. A web page the user happens to visit can send requests to 127.0.0.1, and
 * with DNS rebinding (evil.example resolving to 127.0.0.1) read the answers as same-origin. So, before any
 * route runs:
 * - the Host header must name this server: localhost, 127.0.0.1 or [::1] on the bound port, or a name the
 *   user allowed (`--host`, `--allowed-host`) — a rebinding page's requests carry its own domain;
 * - an Origin header, when sent, must be this server's own origin (no CORS: other sites get nothing);
 * - the request target must be in canonical form (path-guard.ts), so the path judged here is the very path
 *   the router routes — "/%61pi/info" or "http://x/api/info" would otherwise be judged as static files and
 *   routed to the API;
 * - every path but the page's own files must carry the per-session token printed at start-up (as Jupyter
 *   does), compared in constant time, so even a same-host process or page without the URL cannot run or
 *   read jobs. Deny by default: a route added later is guarded without anyone remembering to.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ApiError } from "./api-error.ts";
import { pathProblem, routedPath } from "./path-guard.ts";
import { TOKEN_HEADER } from "./token-header.ts";

export { TOKEN_HEADER };

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];

export interface AccessOptions {
  /** Session token required on every path but `publicPaths`; null turns the check off (`--no-token`). */
  token: string | null;
  /** Paths served without the token: the page's own files, which hold no data ("/", "/app.js", ...). */
  publicPaths?: string[];
  /**
   * Further Host names to answer to besides the loopback ones: "name" (on the bound port) or "name:port"
   * (e.g. the local end of an ssh tunnel). IPv6 addresses in brackets.
   */
  allowedHosts?: string[];
}

/** 192 random bits, hex (URL-safe). */
export function newSessionToken(): string {
  return randomBytes(24).toString("hex");
}

/** Constant-time comparison: both sides are hashed to equal-length digests first. */
export function tokenMatches(expected: string, given: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(digest(expected), digest(given));
}

/** "Name:port" → lower-cased name and port (null when absent); null when the header is not a host. */
export function parseHostHeader(host: string): { name: string; port: number | null } | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(host.trim());
  if (!m) return null;
  return { name: m[1].toLowerCase(), port: m[2] === undefined ? null : Number(m[2]) };
}

/** A bare IPv6 address (from `--host ::1`) written as Host headers write it. */
function asHostName(name: string): string {
  const n = name.toLowerCase();
  return (n.match(/:/g)?.length ?? 0) >= 2 && !n.startsWith("[") ? `[${n}]` : n;
}

export class AccessGuard {
  private readonly boundPortNames = new Set<string>();
  private readonly exact = new Set<string>();
  private readonly publicPaths: Set<string>;

  constructor(private readonly opts: AccessOptions) {
    this.publicPaths = new Set(opts.publicPaths ?? []);
    for (const name of LOOPBACK_NAMES) this.boundPortNames.add(name);
    for (const entry of opts.allowedHosts ?? []) {
      const parsed = parseHostHeader(asHostName(entry));
      if (!parsed) throw new Error(`--allowed-host ${JSON.stringify(entry)} is not a host name or host:port`);
      if (parsed.port === null) this.boundPortNames.add(parsed.name);
      else this.exact.add(`${parsed.name}:${parsed.port}`);
    }
  }

  get token(): string | null {
    return this.opts.token;
  }

  /** The first reason to refuse this request, or null when it may go on. */
  refusal(req: FastifyRequest): ApiError | null {
    const boundPort = req.raw.socket.localPort ?? 0;
    if (req.headers.host === undefined)
      return new ApiError(
        400,
        "The request has no Host header (HTTP/1.1 requires one, and the explorer answers only to its own names).",
        `Send Host: 127.0.0.1:${boundPort} — browsers and curl do this by themselves.`,
      );
    const hostHeader = req.headers.host;
    if (!this.hostAllowed(hostHeader, boundPort)) {
      const shown = JSON.stringify(hostHeader.slice(0, 100));
      return new ApiError(
        403,
        `Refused a request for host ${shown}: the explorer answers only to localhost, 127.0.0.1 and [::1] on port ${boundPort} (this blocks DNS-rebinding attacks from web pages).`,
        `Open http://127.0.0.1:${boundPort}/ — if you reach the explorer under another name on purpose (a tunnel, a LAN address), restart it with --allowed-host ${hostHeader ? hostHeader.slice(0, 100) : "NAME"}.`,
      );
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin.toLowerCase() !== `http://${hostHeader.toLowerCase()}`) {
      return new ApiError(
        403,
        `Refused a cross-origin request from ${JSON.stringify(origin.slice(0, 100))}: only the explorer's own page may use it.`,
        `Use the explorer page at http://${hostHeader}/ itself; other sites cannot call its API.`,
      );
    }
    const rawUrl = req.raw.url ?? "/";
    const problem = pathProblem(rawUrl);
    if (problem)
      return new ApiError(400, `Bad request path: ${problem.reason} are not allowed.`, problem.fix);
    if (this.opts.token !== null && !this.publicPaths.has(routedPath(rawUrl))) {
      const given = req.headers[TOKEN_HEADER];
      if (typeof given !== "string" || !tokenMatches(this.opts.token, given)) {
        return new ApiError(
          401,
          given === undefined
            ? "This address needs the session token, and the request has none."
            : "The session token is wrong (the server was restarted, or the token was mistyped).",
          `Open the address \`circuitscope serve\` printed at start-up (it ends in ?token=...); scripts send the token in the ${TOKEN_HEADER} header. On a trusted machine, --no-token turns this check off.`,
        );
      }
    }
    return null;
  }

  private hostAllowed(hostHeader: string, boundPort: number): boolean {
    const host = parseHostHeader(hostHeader);
    if (!host) return false;
    const port = host.port ?? 80;
    if (this.exact.has(`${host.name}:${port}`)) return true;
    return this.boundPortNames.has(host.name) && port === boundPort;
  }
}

/**
 * No other site may frame the explorer (clickjacking: a framing page could trick clicks into model runs).
 * X-Frame-Options for older browsers, CSP frame-ancestors for current ones.
 */
export const NO_FRAMING_HEADERS = {
  "x-frame-options": "DENY",
  "content-security-policy": "frame-ancestors 'none'",
} as const;

/**
 * Runs the guard before everything else: routing hooks, static files, not-found answers, every route; and
 * forbids framing on every answer, refusals included.
 */
export function installAccessGuard(app: FastifyInstance, guard: AccessGuard): void {
  app.addHook("onSend", async (_req, reply, payload) => {
    reply.headers(NO_FRAMING_HEADERS);
    return payload;
  });
  app.addHook("onRequest", async (req) => {
    const refusal = guard.refusal(req);
    if (refusal) throw refusal;
  });
}
