/**
 * Who may use the explorer, tried the way an attacking web page would: a DNS-rebinding page sends its own
 * domain as Host, a cross-site page sends its Origin, a page or program without the printed URL has no
 * token. Each request goes out byte for byte with node:http (fetch would not let us set Host).
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, test } from "node:test";
import { parseHostHeader, TOKEN_HEADER, tokenMatches } from "../../src/server/access-guard.ts";
import type { JobView } from "../../src/server/job-queue.ts";
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
