/**
 * Who may use the explorer, tried the way an attacking web page would: a DNS-rebinding page sends its own
 * domain as Host, a cross-site page sends its Origin, a page or program without the printed URL has no
 * token. Each request goes out byte for byte with node:http (fetch would not let us set Host).
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { parseHostHeader, TOKEN_HEADER, tokenMatches } from "../../src/server/access-guard.ts";
import type { JobView } from "../../src/server/job-queue.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { referenceJson } from "../helpers/reference.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

const { clean, corrupted, answer, wrong } = referenceJson.prompts;
const JOB = { kind: "patching", clean: clean[0], corrupted: corrupted[0], answer, wrong, target: "head_z" };

let fx: FixtureServer;
let port: number;
let doneJobId: string;

before(async () => {
  fx = await startFixtureServer();
  port = Number(new URL(fx.base).port);
  const submitted = (await (await fx.api("/api/jobs", post(JOB))).json()) as JobView;
  doneJobId = submitted.id;
  await fx.server.queue.settled(doneJobId);
});
after(async () => {
  await fx.server.close();
});

function post(body: unknown): RequestInit {
  return { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with exactly these headers (Host included); the session token unless `token` says otherwise. */
function raw(
  route: { method: string; path: string; body?: unknown },
  headers: Record<string, string>,
  token: string | null = fx.server.token,
  target = port,
): Promise<Raw> {
  const body = route.body === undefined ? undefined : JSON.stringify(route.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: target,
        path: route.path,
        method: route.method,
        setHost: false,
        headers: {
          ...(token !== null ? { [TOKEN_HEADER]: token } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Every route the server has, static and API, with a valid body each. */
function routes() {
  return [
    { method: "GET", path: "/" },
    { method: "GET", path: "/index.html" },
    { method: "GET", path: "/app.js" },
    { method: "GET", path: "/app.css" },
    { method: "GET", path: "/no-such-file" },
    { method: "GET", path: "/api/info" },
    { method: "POST", path: "/api/tokens", body: { prompt: "Hello" } },
    { method: "POST", path: "/api/predict", body: { prompt: "Hello" } },
    { method: "POST", path: "/api/attention", body: { prompt: "Hello", layer: 0, head: 0 } },
    { method: "POST", path: "/api/attribution", body: { prompt: clean[0], answer, wrong } },
    { method: "GET", path: "/api/neurons/0/1" },
    { method: "GET", path: "/api/transcoder-features/0/1" }, // 404 past the guard: this server has no transcoders
    { method: "POST", path: "/api/jobs", body: JOB },
    { method: "GET", path: `/api/jobs/${doneJobId}` },
    { method: "GET", path: `/api/jobs/${doneJobId}/events` },
    { method: "DELETE", path: `/api/jobs/${doneJobId}` },
    { method: "GET", path: "/api/nope" },
    { method: "GET", path: "/api/jobs/%E0%A4%A" }, // malformed encoding: fastify's own FST_ERR_BAD_URL
    { method: "OPTIONS", path: "/api/predict" },
  ];
}

function assertRefused(r: Raw, status: number, pattern: RegExp, what: string): void {
  assert.equal(r.status, status, `${what}: ${r.body.slice(0, 200)}`);
  const json = JSON.parse(r.body) as { error: { message: string; fix?: string } };
  assert.match(`${json.error.message} ${json.error.fix}`, pattern, what);
  for (const name of Object.keys(r.headers))
    assert.ok(!name.startsWith("access-control-"), `${what}: no CORS header (${name})`);
}

test("every route answers the loopback names on the bound port (the baseline the refusals are measured against)", async () => {
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LocalHost:${port}`]) {
    const r = await raw({ method: "GET", path: "/api/info" }, { host });
    assert.equal(r.status, 200, `${host}: ${r.body}`);
  }
  for (const route of routes()) {
    const r = await raw(route, { host: `127.0.0.1:${port}` });
    assert.ok(r.status !== 403 && r.status !== 401, `${route.method} ${route.path} → ${r.status}`);
  }
});

test("a foreign Host (DNS rebinding) is refused with 403 on every route, static and API, before anything runs", async () => {
  const jobsSeen: string[] = [];
  // Only jobs created from here on: an earlier test's job may still be reporting progress.
  const startedAt = Date.now();
  const onUpdate = (v: JobView) => {
    if (Date.parse(v.createdAt) >= startedAt) jobsSeen.push(v.id);
  };
  fx.server.queue.events.on("update", onUpdate);
  const hosts = [
    "evil.example",
    `evil.example:${port}`,
    `127.0.0.1.evil.example:${port}`,
    `localhost.evil.example:${port}`,
    `localhost:${port + 1}`, // another port: not this server's origin
    `127.0.0.1:${port}@evil.example`,
    "",
  ];
  for (const host of hosts) {
    for (const route of routes()) {
      const r = await raw(route, { host });
      assertRefused(
        r,
        403,
        /answers only to localhost.*--allowed-host/s,
        `Host ${host} ${route.method} ${route.path}`,
      );
      assert.doesNotMatch(r.body, /circuitscope explorer|tiny-gpt2|strTokens/, "nothing of the app leaks");
    }
  }
  fx.server.queue.events.off("update", onUpdate);
  assert.deepEqual(jobsSeen, [], "no model run started for a refused request");
});

test("an Origin other than the server's own is refused with 403; the page's own origin is served; no CORS headers", async () => {
  const host = `127.0.0.1:${port}`;
  for (const origin of [
    "http://evil.example",
    `http://evil.example:${port}`,
    `http://localhost:${port}`, // same machine, but not the origin the page was loaded from
    `https://127.0.0.1:${port}`,
    `http://127.0.0.1:${port + 1}`,
    "null", // sandboxed iframes and file: pages
  ]) {
    for (const route of routes()) {
      const r = await raw(route, { host, origin });
      assertRefused(r, 403, /cross-origin.*own page/is, `Origin ${origin} ${route.method} ${route.path}`);
    }
  }
  const own = await raw(
    { method: "POST", path: "/api/tokens", body: { prompt: "Hi" } },
    { host, origin: `http://${host}` },
  );
  assert.equal(own.status, 200, own.body);
  assert.deepEqual((JSON.parse(own.body) as { strTokens: string[] }).strTokens.slice(1), ["Hi"]);
  assert.equal(own.headers["access-control-allow-origin"], undefined);
});

test("API calls need the session token: none or a wrong one → 401 with the fix; the right one → 200", async () => {
  const host = `127.0.0.1:${port}`;
  const token = fx.server.token as string;
  assert.match(token, /^[0-9a-f]{48}$/, "192 random bits");
  const wrongSameLength = token.slice(0, -1) + (token.endsWith("0") ? "1" : "0");
  for (const route of routes().filter((r) => r.path.startsWith("/api/") && !r.path.includes("%"))) {
    const what = `${route.method} ${route.path}`;
    assertRefused(await raw(route, { host }, null), 401, /has none.*\?token=.*--no-token/s, what);
    assertRefused(await raw(route, { host }, wrongSameLength), 401, /token is wrong/, what);
    assertRefused(await raw(route, { host }, "short"), 401, /token is wrong/, what);
    assertRefused(await raw(route, { host, [TOKEN_HEADER]: "" }, null), 401, /token is wrong/, what);
  }
  // The token in the query string is not accepted by the API (it would end up in logs and history).
  assertRefused(
    await raw({ method: "GET", path: `/api/info?token=${token}` }, { host }, null),
    401,
    /has none/,
    "query",
  );
  const ok = await raw({ method: "GET", path: "/api/info" }, { host });
  assert.equal(ok.status, 200);
  const page = await raw({ method: "GET", path: "/" }, { host }, null);
  assert.equal(page.status, 200, "the page itself needs no token (it holds no data)");
  assert.match(page.body, /circuitscope/);
});

test("a finished job's result is readable only with the token, and job ids are random, not sequential", async () => {
  const host = `127.0.0.1:${port}`;
  const withToken = await raw({ method: "GET", path: `/api/jobs/${doneJobId}` }, { host });
  assert.equal(withToken.status, 200);
  assert.equal((JSON.parse(withToken.body) as JobView).status, "done");
  const without = await raw({ method: "GET", path: `/api/jobs/${doneJobId}` }, { host }, null);
  assert.equal(without.status, 401);
  assert.doesNotMatch(without.body, /heatmap|values/);

  const ids: string[] = [doneJobId];
  for (let i = 0; i < 4; i++) ids.push(((await (await fx.api("/api/jobs", post(JOB))).json()) as JobView).id);
  await Promise.all(ids.map((id) => fx.server.queue.settled(id)));
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/, "128 random bits");
  assert.equal(new Set(ids).size, ids.length);
  // Sequential ids (1, 2, 3, ... or any fixed step) would let a page walk through other runs' results.
  const numeric = ids.map((id) => Number.parseInt(id.slice(-8), 16));
  const steps = new Set(numeric.slice(1).map((n, i) => n - numeric[i]));
  assert.ok(steps.size > 1, `ids step by a constant: ${ids.join(", ")}`);
  for (const guess of ["1", "2", "3", "100"]) assert.equal((await fx.api(`/api/jobs/${guess}`)).status, 404);
});

test("responses name the model as typed, never the absolute path", async () => {
  const info = (await (await fx.api("/api/info")).json()) as { model: string };
  assert.equal(info.model, "tiny-gpt2");
  const host = `127.0.0.1:${port}`;
  for (const route of routes()) {
    const r = await raw(route, { host });
    assert.ok(
      !r.body.includes(FIXTURE_DIR) && !r.body.includes(process.cwd()),
      `${route.method} ${route.path}`,
    );
  }
});

test("--allowed-host adds names (on the bound port, or name:port for a tunnel); --no-token drops the token", async () => {
  const other = await startFixtureServer({ token: null, allowedHosts: ["explorer.lan", "localhost:9000"] });
  try {
    const p = Number(new URL(other.base).port);
    const get = (host: string, origin?: string) =>
      raw({ method: "GET", path: "/api/info" }, { host, ...(origin ? { origin } : {}) }, null, p);
    assert.equal(other.server.token, null);
    assert.equal((await get(`127.0.0.1:${p}`)).status, 200, "no token needed");
    assert.equal((await get(`explorer.lan:${p}`)).status, 200);
    assert.equal((await get(`explorer.lan:${p}`, `http://explorer.lan:${p}`)).status, 200);
    assert.equal((await get("localhost:9000")).status, 200, "the local end of a tunnel");
    assert.equal((await get("explorer.lan:9000")).status, 403);
    assert.equal((await get(`evil.example:${p}`)).status, 403, "the Host check stays on without a token");
    assert.equal((await get(`explorer.lan:${p}`, "http://evil.example")).status, 403);
  } finally {
    await other.server.close();
  }
  await assert.rejects(startFixtureServer({ allowedHosts: ["bad host/x"] }), /--allowed-host "bad host\/x"/);
});

test("host header parsing and the constant-time token comparison", () => {
  assert.deepEqual(parseHostHeader("LocalHost:8080"), { name: "localhost", port: 8080 });
  assert.deepEqual(parseHostHeader("[::1]:80"), { name: "[::1]", port: 80 });
  assert.deepEqual(parseHostHeader("example.org"), { name: "example.org", port: null });
  for (const bad of ["", "a b", "x:y", "a@b:1", "[::1", "host:123456"])
    assert.equal(parseHostHeader(bad), null, bad);
  assert.equal(tokenMatches("abc", "abc"), true);
  assert.equal(tokenMatches("abc", "abd"), false);
  assert.equal(tokenMatches("abc", "abcd"), false, "different lengths compare (as digests) without throwing");
  assert.equal(tokenMatches("abc", ""), false);
});

/** Sends exactly these bytes as the request target (node:http would refuse or rewrite some) and reads the answer. */
function rawTarget(
  route: { method: string; body?: unknown },
  target: string,
  token: string | null,
): Promise<{ status: number; body: string }> {
  const body = route.body === undefined ? "" : JSON.stringify(route.body);
  const head = [
    `${route.method} ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Connection: close",
    ...(token !== null ? [`${TOKEN_HEADER}: ${token}`] : []),
    ...(body ? ["Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`] : []),
  ];
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(`${head.join("\r\n")}\r\n\r\n${body}`));
    let text = "";
    socket.on("data", (c) => (text += c));
    socket.on("end", () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
    });
    socket.on("error", reject);
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(new Error(`no answer to ${route.method} ${JSON.stringify(target)}`));
    });
  });
}

const hex = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`;

/**
 * Spellings of one path that a lenient router might route as that path: every encoding the traversal test
 * (api.test.ts) uses — percent-encoding in either case, double encoding, encoded and back slashes, dot
 * segments plain and encoded, NUL — plus absolute-form targets, doubled slashes, case, trailing slashes and
 * delimiters, and `random` seeded mutations of single characters.
 */
function spellings(path: string, random: number): string[] {
  const chars = [...path];
  const out = new Set<string>([
    chars.map(hex).join(""),
    chars.map((c) => hex(c).toUpperCase()).join(""),
    path.replace(/[a-z]/, (c) => hex(c)), // "/%61pi/info"
    path.replace(/[a-z]/, (c) => hex(c).toUpperCase()),
    path.replace(/[a-z]/, (c) => `%25${hex(c).slice(1)}`), // double-encoded
    path.replace(/\//g, "%2f"),
    path.replace(/\//g, "%2F"),
    path.replace(/\//g, "\\"),
    `/.${path}`,
    `/./${path.slice(1)}`,
    `/%2e/${path.slice(1)}`,
    `/x/../${path.slice(1)}`,
    `/x/%2e%2e/${path.slice(1)}`,
    `/x/.%2e/${path.slice(1)}`,
    `/%00${path.slice(1)}`,
    `${path}%00`,
    `/${path}`,
    `//${path}`,
    path.replace(/\//g, "//"),
    `http://x${path}`,
    `http://127.0.0.1:${port}${path}`,
    `HTTP://x${path}`,
    `https://x${path}`,
    `http:${path}`,
    `x${path}`,
    `*${path}`,
    path.toUpperCase(),
    `${path}/`,
    `${path};x`,
    `${path}%3f`,
    `${path}%23`,
    `${path}#?x`,
    `${path}%20`,
  ]);
  const rng = mulberry32(0x5ec + path.length);
  const pick = (n: number) => Math.floor(rng() * n);
  for (let k = 0; k < random; k++) {
    const i = pick(chars.length);
    const c = chars[i];
    const swaps = [hex(c), hex(c).toUpperCase(), `%25${hex(c).slice(1)}`, "%2f", "\\", "/./", "//", ";", "%"];
    out.add(chars.slice(0, i).join("") + swaps[pick(swaps.length)] + chars.slice(i + 1).join(""));
  }
  out.delete(path);
  return [...out];
}

test("fuzz: no spelling of any path gets past the token — the guard judges the path the router routes", async () => {
  const startedAt = Date.now();
  const jobsSeen: string[] = [];
  const onUpdate = (v: JobView) => {
    if (Date.parse(v.createdAt) >= startedAt) jobsSeen.push(v.id);
  };
  fx.server.queue.events.on("update", onUpdate);
  const publicPaths = new Set(["/", "/index.html", "/app.js", "/app.css", "/favicon.svg"]);
  let tried = 0;
  try {
    for (const route of routes()) {
      const base = route.path.split("?")[0];
      if (base.includes("%")) continue; // already a malformed spelling
      for (const target of spellings(base, 16)) {
        const what = `${route.method} ${JSON.stringify(target)}`;
        const r = await rawTarget(route, target, null);
        tried++;
        assert.ok(
          r.status === 400 || r.status === 401,
          `${what} without a token → ${r.status} ${r.body.slice(0, 200)}`,
        );
        assert.doesNotMatch(r.body, /tiny-gpt2|strTokens|"status":"done"|circuitscope explorer/, what);
        // With the token too, a spelling other than the canonical one is refused (or, if canonical, not found),
        // so no second path to a route exists at all.
        const withToken = await rawTarget(route, target, fx.server.token);
        assert.ok(
          withToken.status === 400 || withToken.status === 404,
          `${what} with the token → ${withToken.status} ${withToken.body.slice(0, 200)}`,
        );
      }
      const canonical = await rawTarget(route, base, null);
      const isPublic = publicPaths.has(base);
      assert.equal(
        canonical.status === 401,
        !isPublic,
        `${route.method} ${base} without a token → ${canonical.status}`,
      );
    }
  } finally {
    fx.server.queue.events.off("update", onUpdate);
  }
  assert.ok(tried > 500, `${tried} spellings tried`);
  assert.deepEqual(jobsSeen, [], "no spelling started a model run");
});

test("the issue's bypasses, exactly: /%61pi/info, POST /%61pi/predict and an absolute-form target are refused without a token", async () => {
  const info = await rawTarget({ method: "GET" }, "/%61pi/info", null);
  assert.equal(info.status, 400, info.body);
  assert.match(JSON.parse(info.body).error.message, /percent-encoded characters in the path are not allowed/);
  const predict = await rawTarget({ method: "POST", body: { prompt: "Hello" } }, "/%61pi/predict", null);
  assert.equal(predict.status, 400, predict.body);
  const absolute = await rawTarget({ method: "GET" }, "http://x/api/info", null);
  assert.equal(absolute.status, 400, absolute.body);
  assert.match(JSON.parse(absolute.body).error.message, /not a path \(an absolute URL/);
  const doubled = await rawTarget({ method: "GET" }, "//x", fx.server.token);
  assert.equal(doubled.status, 400, doubled.body);
  assert.deepEqual(JSON.parse(doubled.body).error, {
    message:
      "Bad request path: empty path segments ('//'; at the start, some clients read what follows as a host name) are not allowed.",
    fix: "Separate the path's parts with single slashes, e.g. /index.html or /api/info.",
  });
});

test("an HTTP/1.1 request without Host gets a JSON 400 in the usual shape, naming the header", async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () =>
      socket.end("GET /api/info HTTP/1.1\r\nConnection: close\r\n\r\n"),
    );
    let t = "";
    socket.on("data", (c) => (t += c));
    socket.on("end", () => resolve(t));
    socket.on("error", reject);
  });
  assert.match(text, /^HTTP\/1\.1 400 /);
  const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as {
    error: { message: string; fix: string };
  };
  assert.deepEqual(Object.keys(body.error), ["message", "fix"]);
  assert.match(body.error.message, /no Host header/);
  assert.match(body.error.fix, new RegExp(`Host: 127\\.0\\.0\\.1:${port}`));
});

test("no answer may be framed by another site: X-Frame-Options DENY and CSP frame-ancestors 'none' on pages, API and refusals", async () => {
  const host = `127.0.0.1:${port}`;
  const answers = [
    await raw({ method: "GET", path: "/" }, { host }, null),
    await raw({ method: "GET", path: "/app.js" }, { host }, null),
    await raw({ method: "GET", path: "/api/info" }, { host }),
    await raw({ method: "GET", path: "/api/info" }, { host }, null), // 401
    await raw({ method: "GET", path: "/api/info" }, { host: "evil.example" }), // 403
    await raw({ method: "GET", path: "/no-such-file" }, { host }), // 404
    await raw({ method: "GET", path: "/%2e%2e/x" }, { host }), // 400
    await raw({ method: "GET", path: "/api/jobs/%E0%A4%A" }, { host }), // the router's own error
  ];
  for (const r of answers) {
    assert.equal(r.headers["x-frame-options"], "DENY", `${r.status}`);
    assert.equal(r.headers["content-security-policy"], "frame-ancestors 'none'", `${r.status}`);
  }
  assert.deepEqual(
    answers.map((r) => r.status),
    [200, 200, 200, 401, 403, 404, 400, 400],
  );
});
