/**
 * Every CLI command on the bundled Llama-architecture model (`--model stories260k`), each value checked
 * against an independent computation: the float64 reference forward (test/helpers/llama-reference.ts) on
 * the checkpoint's own Hugging Face tensors. (`generate` from BOS and `predict`'s token ids are pinned to
 * llama2.c's outputs in test/model/stories260k.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import {
  llamaReferenceFromTensors,
  readHfTensors,
  readLlamaRefConfig,
  referenceEncode,
  referenceGreedy,
  referenceHeadDla,
  referenceLogitDiff,
  referencePatchedLogitDiff,
} from "../helpers/llama-reference.ts";
import { startFixtureServer } from "../server/server-fixture.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const M = ["--model", "stories260k"];
const SHE = 358;
const HE = 281;
const c = readLlamaRefConfig(STORIES);
const hf = readHfTensors(STORIES);
const ref = (tokens: readonly number[]) => llamaReferenceFromTensors(c, hf, tokens, { processed: true });
const tmp = mkdtempSync(join(tmpdir(), "circuitscope-stories-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function json(args: string[]): Promise<Record<string, any>> {
  const out = await runCli([...args, ...M, "--json"]);
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout);
}

function near(got: number, want: number, what: string, tol = 1e-4): void {
  assert.ok(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want}`);
}

const PROMPT = "Lily was happy because";
const tokens = referenceEncode(STORIES, PROMPT);

describe("CLI on stories260k", () => {
  test("predict: the reference's top tokens, processed logits (raw minus their vocabulary mean)", async () => {
    const out = await json(["predict", "-k", "5", PROMPT]);
    assert.deepEqual(out.tokens, tokens);
    const logits = ref(tokens).get("logits")!;
    const row = Array.from(logits.data.subarray((tokens.length - 1) * c.V, tokens.length * c.V));
    const order = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
    assert.deepEqual(
      out.top.map((t: { token: number }) => t.token),
      order.slice(0, 5).map(([, i]) => i),
    );
    for (const t of out.top) near(t.logit, row[t.token], `logit of ${t.token}`);
    assert.equal(out.top[0].str, " she");
  });

  test("generate: greedy continuation of a prompt equals the reference's", async () => {
    const out = await json(["generate", "-n", "12", "-t", "0", PROMPT]);
    const want = referenceGreedy(STORIES, tokens, 12);
    assert.deepEqual(out.tokens, want);
    assert.deepEqual(out.newTokens, want.slice(tokens.length));
  });

  test("attribute: logit difference and every head's direct logit attribution", async () => {
    const out = await json(["attribute", "-p", PROMPT, "-a", " she", "-w", " he"]);
    const acts = ref(tokens);
    near(out.logitDiff, referenceLogitDiff(acts, SHE, HE), "logit diff");
    const dla = referenceHeadDla(c, hf, acts, SHE, HE);
    for (let l = 0; l < c.L; l++)
      for (let h = 0; h < c.H; h++) near(out.heads[l][h], dla[l * c.H + h], `L${l}H${h}`);
    // The decomposition has no pos_embed (rotary) and adds up to the logit difference.
    assert.equal(out.decomposeResid.labels.includes("pos_embed"), false);
    near(
      out.decomposeResid.values.reduce((a: number, b: number) => a + b, 0),
      out.logitDiff,
      "sum of parts",
    );
  });

  test("attention: each requested head's pattern", async () => {
    const out = await json(["attention", "--heads", "1.3,4.6", "-p", PROMPT]);
    const acts = ref(tokens);
    const n = tokens.length;
    for (const head of out.heads) {
      const pattern = acts.get(`blocks.${head.layer}.attn.hook_pattern`)!.data;
      for (let q = 0; q < n; q++)
        for (let k = 0; k < n; k++)
          near(head.pattern[q][k], pattern[(head.head * n + q) * n + k], `${head.label}[${q}][${k}]`, 1e-5);
    }
    assert.deepEqual(
      out.heads.map((h: { label: string }) => h.label),
      ["L1H3", "L4H6"],
    );
  });

  test("heads: previous-token scores are the share of non-BOS attention on the previous token", async () => {
    const text = "Lily was happy. Lily was happy.";
    const out = await json(["heads", "--kind", "previous_token", "-p", text]);
    const seq = referenceEncode(STORIES, text);
    const n = seq.length;
    const acts = ref(seq);
    for (let l = 0; l < c.L; l++) {
      const a = acts.get(`blocks.${l}.attn.hook_pattern`)!.data;
      for (let h = 0; h < c.H; h++) {
        let hit = 0;
        let total = 0;
        for (let q = 0; q < n; q++)
          for (let k = 1; k <= q; k++) {
            total += a[(h * n + q) * n + k];
            if (k === q - 1) hit += a[(h * n + q) * n + k];
          }
        near(out.previous_token[l][h], hit / total, `L${l}H${h}`, 1e-5);
      }
    }
  });

  test("composition: K-, Q- and V-composition from the checkpoint's folded weights, key/value heads shared", async () => {
    const out = await json(["composition"]);
    const { D, H, dh, L } = c;
    const group = H / c.Hkv;
    // Processed weights of head h, as [D, dh] (W_Q, W_K, W_V: RMSNorm weight folded in) and [dh, D] (W_O).
    const reading = (l: number, proj: string, h: number) => {
      const W = hf.get(`model.layers.${l}.self_attn.${proj}.weight`)!.data; // [heads*dh, D]
      const g = hf.get(`model.layers.${l}.input_layernorm.weight`)!.data;
      const row0 = (proj === "q_proj" ? h : Math.floor(h / group)) * dh;
      return Float64Array.from(
        { length: D * dh },
        (_, i) => g[Math.floor(i / dh)] * W[(row0 + (i % dh)) * D + Math.floor(i / dh)],
      );
    };
    const writing = (l: number, h: number) => {
      const W = hf.get(`model.layers.${l}.self_attn.o_proj.weight`)!.data; // [D, H*dh]
      return Float64Array.from(
        { length: dh * D },
        (_, i) => W[(i % D) * H * dh + h * dh + Math.floor(i / D)],
      );
    };
    const mul = (a: Float64Array, b: Float64Array, m: number, k: number, n: number) => {
      const o = new Float64Array(m * n);
      for (let i = 0; i < m; i++)
        for (let e = 0; e < k; e++) for (let j = 0; j < n; j++) o[i * n + j] += a[i * k + e] * b[e * n + j];
      return o;
    };
    const tr = (a: Float64Array, r: number, cols: number) =>
      Float64Array.from({ length: r * cols }, (_, i) => a[(i % r) * cols + Math.floor(i / r)]);
    const frob = (a: Float64Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
    const OV = (l: number, h: number) => mul(reading(l, "v_proj", h), writing(l, h), D, dh, D);
    const QK = (l: number, h: number) =>
      mul(reading(l, "q_proj", h), tr(reading(l, "k_proj", h), D, dh), D, dh, D);
    const score = (a: Float64Array, b: Float64Array) => frob(mul(a, b, D, D, D)) / (frob(a) * frob(b));
    const pairs: [number, number, number, number][] = [
      [0, 0, 1, 0],
      [0, 5, 4, 7],
      [2, 3, 3, 1],
      [1, 6, 2, 6],
    ];
    for (const [l1, h1, l2, h2] of pairs) {
      const i = l1 * H + h1;
      const j = l2 * H + h2;
      near(out.Q[i][j], score(OV(l1, h1), QK(l2, h2)), `Q ${i}→${j}`, 1e-5);
      near(out.K[i][j], score(OV(l1, h1), tr(QK(l2, h2), D, D)), `K ${i}→${j}`, 1e-5);
      near(out.V[i][j], score(OV(l1, h1), OV(l2, h2)), `V ${i}→${j}`, 1e-5);
    }
    assert.equal(out.K.length, L * H);
    assert.equal(out.K[H][0], 0, "no composition backwards in layers");
  });

  test("patch: head_v over key/value heads, and resid_pre, equal patching in the reference", async () => {
    const corrupted = "Tim was happy because";
    const corruptedTokens = referenceEncode(STORIES, corrupted);
    const args = ["patch", "--clean", PROMPT, "--corrupted", corrupted, "--answer", " she", "--wrong", " he"];
    const p = { clean: ref(tokens), corruptedTokens, answer: SHE, wrong: HE };
    const v = await json([...args, "-t", "head_v"]);
    assert.deepEqual(v.axes, ["layer", "kv_head"]);
    near(v.clean, referenceLogitDiff(p.clean, SHE, HE), "clean");
    const span = v.clean - v.corrupted;
    for (let l = 0; l < c.L; l++)
      for (let g = 0; g < c.Hkv; g++) {
        const want = referencePatchedLogitDiff(
          c,
          hf,
          p,
          `blocks.${l}.attn.hook_v`,
          (i) => Math.floor(i / c.dh) % c.Hkv === g,
        );
        near(v.values[l][g], (want - v.corrupted) / span, `v L${l} KV${g}`);
      }
    const r = await json([...args, "-t", "resid_pre"]);
    const n = tokens.length;
    for (const l of [0, 2, 4])
      for (let pos = 0; pos < n; pos++) {
        const want = referencePatchedLogitDiff(
          c,
          hf,
          p,
          `blocks.${l}.hook_resid_pre`,
          (i) => Math.floor(i / c.D) === pos,
        );
        near(r.values[l][pos], (want - r.corrupted) / span, `resid_pre L${l} pos ${pos}`);
      }
  });

  test("index + neuron: stored top examples are the reference's activations, pages show mlp.hook_post", async () => {
    const corpus = join(tmp, "corpus.txt");
    writeFileSync(
      corpus,
      "Lily was happy because she had a new toy.\n\nTim was sad because he lost his ball.\n\n" +
        "Once upon a time there was a little dog. The dog liked to run in the park.\n",
    );
    const dir = join(tmp, "index");
    const built = await runCli([
      "index",
      ...M,
      "-c",
      corpus,
      "--context-len",
      "12",
      "--top-k",
      "3",
      "-o",
      dir,
      "--json",
    ]);
    assert.equal(built.code, 0, built.stderr);
    const index = NeuronIndex.open(dir);
    const layer = 3;
    for (const neuron of [0, 17, 171]) {
      const { examples } = index.summary(layer, neuron);
      assert.ok(examples.length > 0);
      let best = Number.NEGATIVE_INFINITY;
      for (const ex of examples) {
        const ctx = index.contextTokens(ex.contextId);
        assert.equal(ctx[0], 1, "every context starts with BOS <s> (id 1)");
        const post = ref(ctx).get(`blocks.${layer}.mlp.hook_post`)!.data;
        near(ex.value, post[ex.position * c.dMlp + neuron], `L${layer}N${neuron} example`);
        assert.ok(ex.value <= (best === Number.NEGATIVE_INFINITY ? ex.value : best));
        best = ex.value;
      }
    }
    const page = await json(["neuron", "-l", String(layer), "-n", "17", "-i", dir, "-t", PROMPT]);
    const post = ref(tokens).get(`blocks.${layer}.mlp.hook_post`)!.data;
    const acts: number[] = page.ownText.activations;
    assert.equal(acts.length, tokens.length, JSON.stringify(Object.keys(page)));
    for (const [p, a] of acts.entries()) near(a, post[p * c.dMlp + 17], `text activation ${p}`);
  });

  test("serve: the explorer API answers predictions and attribution for the bundled model", async () => {
    const { server, api } = await startFixtureServer({}, "stories260k");
    try {
      const post = async (path: string, body: unknown) => {
        const res = await api(path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 200, path);
        return (await res.json()) as Record<string, any>;
      };
      const info = (await (await api("/api/info")).json()) as Record<string, any>;
      assert.deepEqual([info.cfg.nLayers, info.cfg.nHeads, info.cfg.dMlp], [5, 8, 172]);
      const pred = await post("/api/predict", { prompt: PROMPT, topK: 3 });
      assert.deepEqual(pred.tokens, tokens);
      const row = ref(tokens)
        .get("logits")!
        .data.subarray((tokens.length - 1) * c.V);
      for (const t of pred.top) near(t.logit, row[t.token], `logit of ${t.token}`);
      const attr = await post("/api/attribution", { prompt: PROMPT, answer: " she", wrong: " he" });
      near(attr.logitDiff, referenceLogitDiff(ref(tokens), SHE, HE), "logit diff");
      // A patching job over key/value heads: a [layer, kv_head] heatmap labelled KV0..KV3.
      const corrupted = "Tim was happy because";
      const res = await api("/api/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          kind: "patching",
          clean: PROMPT,
          corrupted,
          answer: " she",
          wrong: " he",
          target: "head_v",
        }),
      });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      let job: Record<string, any> = {};
      for (let i = 0; i < 200 && job.status !== "done"; i++) {
        await new Promise((r) => setTimeout(r, 50));
        job = (await (await api(`/api/jobs/${id}`)).json()) as Record<string, any>;
        assert.notEqual(job.status, "failed", JSON.stringify(job));
      }
      assert.equal(job.status, "done");
      assert.deepEqual(job.result.axes, ["layer", "kv_head"]);
      const spec = job.result.figure.spec;
      const cols = new Set(spec.data.values.map((v: { col: string }) => v.col));
      assert.deepEqual([...cols], ["KV0", "KV1", "KV2", "KV3"]);
      assert.ok(JSON.stringify(spec).includes("key/value head"), "the column axis is titled key/value head");
      const p = {
        clean: ref(tokens),
        corruptedTokens: referenceEncode(STORIES, corrupted),
        answer: SHE,
        wrong: HE,
      };
      const want = referencePatchedLogitDiff(
        c,
        hf,
        p,
        "blocks.4.attn.hook_v",
        (i) => Math.floor(i / c.dh) % c.Hkv === 1,
      );
      const span = referenceLogitDiff(p.clean, SHE, HE) - referenceLogitDiff(ref(p.corruptedTokens), SHE, HE);
      near(
        job.result.values[4][1],
        (want - referenceLogitDiff(ref(p.corruptedTokens), SHE, HE)) / span,
        "L4 KV1",
      );
    } finally {
      await server.close();
    }
  });
});
