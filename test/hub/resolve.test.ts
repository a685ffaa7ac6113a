import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { downloadModel, resolveModel } from "../../src/hub/resolve.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { bundledModelDir } from "../../src/weights/bundled-models.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { type FakeHubOptions, startFakeHub } from "./fake-hub.ts";

const root = mkdtempSync(join(tmpdir(), "cs-hub-"));
after(() => rmSync(root, { recursive: true, force: true }));
let cacheCount = 0;
const freshCache = () => join(root, `cache-${cacheCount++}`);

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const CONFIG = readFileSync(join(FIXTURE_DIR, "config.json"));
const WEIGHTS = readFileSync(join(FIXTURE_DIR, "model.safetensors"));
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const tinyRepo = { commit: COMMIT, files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } };

// No test may pick up a real token or offline flag from the machine.
delete process.env.HF_TOKEN;
delete process.env.HUGGING_FACE_HUB_TOKEN;
delete process.env.HF_HUB_OFFLINE;
process.env.HF_HOME = join(root, "hf-home");

async function withHub<T>(
  opts: FakeHubOptions,
  body: (hub: Awaited<ReturnType<typeof startFakeHub>>) => Promise<T>,
) {
  const hub = await startFakeHub(opts);
  try {
    return await body(hub);
  } finally {
    await hub.close();
  }
}

const gets = (requests: { method: string; url: string }[], suffix: string) =>
  requests.filter((r) => r.method === "GET" && r.url.endsWith(suffix));

test("downloads into an empty cache in the huggingface_hub layout, byte-equal, no network on reuse", async () => {
  const cacheDir = freshCache();
  await withHub({ repos: { gpt2: tinyRepo } }, async (hub) => {
    const dir = await resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint });
    const storage = join(cacheDir, "models--gpt2");
    assert.equal(dir, join(storage, "snapshots", COMMIT));
    assert.deepEqual(readFileSync(join(dir, "config.json")), CONFIG);
    assert.deepEqual(readFileSync(join(dir, "model.safetensors")), WEIGHTS);
    // Snapshot entries are relative symlinks into blobs/, the weights blob named by its sha256.
    assert.ok(lstatSync(join(dir, "model.safetensors")).isSymbolicLink());
    assert.equal(readlinkSync(join(dir, "model.safetensors")), `../../blobs/${sha256(WEIGHTS)}`);
    assert.equal(readFileSync(join(storage, "refs", "main"), "utf8"), COMMIT);
    assert.deepEqual(
      readdirSync(join(storage, "blobs")).filter((f) => f.endsWith(".incomplete")),
      [],
    );
    assert.equal(loadCheckpoint(dir).config.nLayers, 3);

    const before = hub.requests.length;
    assert.ok(before >= 4); // HEAD + GET for each file
    assert.equal(await resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint }), dir);
    assert.equal(hub.requests.length, before, "a cached model needs no requests");
    assert.equal(await resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint, offline: true }), dir);
    assert.equal(hub.requests.length, before);
  });
  // Server gone: still resolves from cache.
  const dir = await resolveModel("gpt2", { cacheDir, endpoint: "http://127.0.0.1:9" });
  assert.equal(dir, join(cacheDir, "models--gpt2", "snapshots", COMMIT));
});

test("a renamed repo (same-host redirect) is followed and cached under the name asked for", async () => {
  const cacheDir = freshCache();
  await withHub(
    { repos: { "openai-community/gpt2": tinyRepo }, renamed: { gpt2: "openai-community/gpt2" } },
    async (hub) => {
      const dir = await resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint });
      assert.equal(dir, join(cacheDir, "models--gpt2", "snapshots", COMMIT));
      assert.deepEqual(readFileSync(join(dir, "model.safetensors")), WEIGHTS);
      assert.deepEqual(readFileSync(join(dir, "config.json")), CONFIG);
      assert.ok(hub.requests.some((r) => r.url.startsWith("/openai-community/gpt2/resolve/")));
    },
  );
});

test("a connection dropped mid-body is resumed with a Range request and verified", async () => {
  const cacheDir = freshCache();
  const dropAt = 3_000_000;
  await withHub({ repos: { gpt2: tinyRepo }, dropFirstGet: { "model.safetensors": dropAt } }, async (hub) => {
    const dir = await resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint });
    const weightGets = hub.requests.filter((r) => r.method === "GET" && r.url.startsWith("/cdn/"));
    assert.equal(weightGets.length, 2);
    assert.equal(weightGets[0].range, undefined);
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(weightGets[1].range ?? "")?.[1]);
    assert.ok(resumedFrom > 0 && resumedFrom <= dropAt, `resumed from ${weightGets[1].range}`);
    assert.deepEqual(readFileSync(join(dir, "model.safetensors")), WEIGHTS);
  });
});

test("a partial file left by an earlier run is resumed from its size; a server ignoring Range restarts", async () => {
  for (const ignoreRange of [false, true]) {
    const cacheDir = freshCache();
    const blobs = join(cacheDir, "models--gpt2", "blobs");
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, `${sha256(WEIGHTS)}.incomplete`), WEIGHTS.subarray(0, 12345));
    await withHub({ repos: { gpt2: tinyRepo }, ignoreRange }, async (hub) => {
      const dir = await resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint });
      const weightGets = hub.requests.filter((r) => r.method === "GET" && r.url.startsWith("/cdn/"));
      assert.deepEqual(
        weightGets.map((r) => r.range),
        ["bytes=12345-"],
      );
      assert.deepEqual(readFileSync(join(dir, "model.safetensors")), WEIGHTS, `ignoreRange=${ignoreRange}`);
    });
  }
});

test("a sha256 mismatch is rejected and leaves nothing in snapshots or blobs", async () => {
  const cacheDir = freshCache();
  await withHub({ repos: { gpt2: tinyRepo }, wrongSha256: ["model.safetensors"] }, async (hub) => {
    await assert.rejects(
      resolveModel("gpt2", { cacheDir, endpoint: hub.endpoint }),
      /model.safetensors from "gpt2" is corrupt: sha256 [0-9a-f]{64} does not match/,
    );
  });
  const storage = join(cacheDir, "models--gpt2");
  assert.equal(existsSync(join(storage, "snapshots")), false);
  assert.equal(existsSync(join(storage, "refs", "main")), false);
  const blobs = readdirSync(join(storage, "blobs"));
  assert.deepEqual(blobs, [
    createHash("sha1").update(`blob ${CONFIG.length}\0`).update(CONFIG).digest("hex"),
  ]);
});

test("offline or unreachable with an empty cache gives the not-in-cache error with the fixes", async () => {
  const cacheDir = freshCache();
  const expected = (why: RegExp) =>
    new RegExp(
      `Model "gpt2" is not in the Hugging Face cache at ${join(cacheDir, "models--gpt2")} and cannot be downloaded: ` +
        `${why.source}.*circuitscope download gpt2.*Python.*--model DIR`,
    );
  await assert.rejects(resolveModel("gpt2", { cacheDir, offline: true }), expected(/offline mode is on/));
  process.env.HF_HUB_OFFLINE = "1";
  try {
    await assert.rejects(resolveModel("gpt2", { cacheDir }), expected(/offline mode is on/));
  } finally {
    delete process.env.HF_HUB_OFFLINE;
  }
  const hub = await startFakeHub({ repos: {} });
  const deadEndpoint = hub.endpoint;
  await hub.close();
  await assert.rejects(
    resolveModel("gpt2", { cacheDir, endpoint: deadEndpoint }),
    expected(/cannot reach http:\/\/127.0.0.1/),
  );
});

test("HF_TOKEN (or opts.token) is sent as a Bearer token to the hub", async () => {
  process.env.HF_TOKEN = "hf_from_env";
  try {
    await withHub({ repos: { gpt2: tinyRepo } }, async (hub) => {
      await resolveModel("gpt2", { cacheDir: freshCache(), endpoint: hub.endpoint });
      const hubRequests = hub.requests.filter((r) => r.url.includes("/resolve/"));
      assert.ok(hubRequests.length >= 3);
      for (const r of hubRequests)
        assert.equal(r.authorization, "Bearer hf_from_env", `${r.method} ${r.url}`);
      hub.requests.length = 0;
      await resolveModel("gpt2", { cacheDir: freshCache(), endpoint: hub.endpoint, token: "hf_opt" });
      assert.equal(hub.requests[0].authorization, "Bearer hf_opt");
    });
  } finally {
    delete process.env.HF_TOKEN;
  }
});

test("a cache filled by Python tools is reused without network, under the canonical repo name too", async () => {
  const cacheDir = freshCache();
  const storage = join(cacheDir, "models--openai-community--gpt2");
  mkdirSync(join(storage, "blobs"), { recursive: true });
  mkdirSync(join(storage, "refs"), { recursive: true });
  mkdirSync(join(storage, "snapshots", COMMIT), { recursive: true });
  const configBlob = "a".repeat(40);
  writeFileSync(join(storage, "blobs", configBlob), CONFIG);
  writeFileSync(join(storage, "blobs", sha256(WEIGHTS)), WEIGHTS);
  symlinkSync(`../../blobs/${configBlob}`, join(storage, "snapshots", COMMIT, "config.json"));
  symlinkSync(`../../blobs/${sha256(WEIGHTS)}`, join(storage, "snapshots", COMMIT, "model.safetensors"));
  writeFileSync(join(storage, "refs", "main"), COMMIT);
  let fetched = 0;
  const noFetch = (async () => {
    fetched++;
    throw new Error("no network in this test");
  }) as typeof fetch;
  for (const name of ["openai-community/gpt2", "gpt2"]) {
    const dir = await resolveModel(name, { cacheDir, fetch: noFetch });
    assert.equal(dir, join(storage, "snapshots", COMMIT));
    assert.deepEqual(loadCheckpoint(dir).tensors.get("ln_f.bias")!.shape, [64]);
  }
  // A pinned commit resolves too; a different one is not cached and (offline) errors.
  assert.equal(
    await resolveModel("gpt2", { cacheDir, fetch: noFetch, revision: COMMIT }),
    join(storage, "snapshots", COMMIT),
  );
  await assert.rejects(
    resolveModel("gpt2", { cacheDir, offline: true, revision: "f".repeat(40) }),
    /not in the Hugging Face cache/,
  );
  assert.equal(fetched, 0);
});

test("sharded repos download the index and every shard, and load like the single file", async () => {
  const src = join(root, "sharded-src");
  const config = {
    nLayers: 2,
    nHeads: 2,
    dModel: 8,
    dHead: 4,
    dMlp: 32,
    nCtx: 6,
    dVocab: 11,
    lnEps: 1e-5,
    act: "gelu_new" as const,
  };
  const written = makeRandomCheckpoint(src, gpt2Config(config), { seed: 11, shards: 2, prefix: true });
  const files = Object.fromEntries(readdirSync(src).map((f) => [f, readFileSync(join(src, f))]));
  await withHub({ repos: { "someone/tiny-sharded": { commit: COMMIT, files } } }, async (hub) => {
    const cacheDir = freshCache();
    const dir = await downloadModel("someone/tiny-sharded", { cacheDir, endpoint: hub.endpoint });
    assert.equal(dir, join(cacheDir, "models--someone--tiny-sharded", "snapshots", COMMIT));
    assert.deepEqual(readdirSync(dir).sort(), Object.keys(files).sort());
    const ckpt = loadCheckpoint(dir);
    for (const [name, tensor] of written) assert.deepEqual(ckpt.tensors.get(name), tensor, name);
    // downloadModel always checks the hub, but fetches nothing already stored.
    hub.requests.length = 0;
    assert.equal(await downloadModel("someone/tiny-sharded", { cacheDir, endpoint: hub.endpoint }), dir);
    assert.ok(hub.requests.length > 0);
    assert.deepEqual(gets(hub.requests, ""), []);
  });
});

test("hub errors: unknown repo, pytorch-only repo, unknown revision, bad names, local directories", async () => {
  const pytorchOnly = {
    commit: COMMIT,
    files: { "config.json": CONFIG, "pytorch_model.bin": Buffer.from("pickle") },
  };
  await withHub({ repos: { gpt2: tinyRepo, "old/model": pytorchOnly } }, async (hub) => {
    const opts = { cacheDir: freshCache(), endpoint: hub.endpoint };
    await assert.rejects(
      resolveModel("nobody/nothing", opts),
      /Model repo "nobody\/nothing" was not found .*HF_TOKEN/,
    );
    await assert.rejects(
      resolveModel("old/model", opts),
      /"old\/model" has only pytorch_model.bin .*save_pretrained\(OUT, safe_serialization=True\)/,
    );
    await assert.rejects(
      resolveModel("gpt2", { ...opts, revision: "v9" }),
      /File config.json of "gpt2" was not found .*--revision/,
    );
  });
  await assert.rejects(resolveModel("./no/such/dir"), /neither an existing directory nor a hub model id/);
  await assert.rejects(resolveModel("bad name!"), /neither an existing directory nor a hub model id/);
  assert.equal(await resolveModel(FIXTURE_DIR), FIXTURE_DIR);
  const empty = join(root, "empty-model");
  mkdirSync(empty);
  await assert.rejects(resolveModel(empty), /has no config.json/);
});

test("a Llama-family repo's tokenizer files come with the weights, and the model loads from the cache", async () => {
  const cacheDir = freshCache();
  const stories = bundledModelDir("stories260k")!;
  const files: Record<string, Buffer> = {};
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    files[f] = readFileSync(join(stories, f));
  await withHub({ repos: { "karpathy/stories260k": { commit: COMMIT, files } } }, async (hub) => {
    const dir = await resolveModel("karpathy/stories260k", { cacheDir, endpoint: hub.endpoint });
    for (const f of Object.keys(files)) assert.deepEqual(readFileSync(join(dir, f)), files[f], f);
    assert.equal(gets(hub.requests, "/tokenizer.json").length, 1);
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
    assert.deepEqual(model.toTokens("Once upon a time"), [1, 403, 407, 261, 378]);
  });
});

test("the name stories260k is the bundled model, whatever the working directory", async () => {
  const cwd = process.cwd();
  try {
    process.chdir(root);
    const dir = await resolveModel("stories260k", { cacheDir: freshCache(), offline: true });
    assert.equal(dir, bundledModelDir("stories260k"));
    assert.ok(existsSync(join(dir, "model.safetensors")));
  } finally {
    process.chdir(cwd);
  }
});
