/**
 * The CLI (`predict`, `patch`, `attribute`, `circuit`, `index` + `neuron`) and the explorer's API on a
 * checkpoint directory of each family written to a temporary directory, each number checked against the
 * library run in-process on the same directory (hooks for patching, the cache for activations). The
 * families are test/helpers/family-checkpoints.ts' FAMILY_CASES; GPT-2's and Llama's commands are also
 * pinned to float64 references in test/cli/ and test/server/.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { runCli } from "../helpers/cli.ts";
import { FAMILY_CASES, writeFamilyCheckpoint } from "../helpers/family-checkpoints.ts";
import { startFixtureServer } from "../server/server-fixture.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-every-feature-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

// The same number of tokens in GPT-2's BPE and in the bundled SentencePiece vocabulary.
const CLEAN = "The girl was happy because";
const CORRUPTED = "The boy was happy because";
const [ANSWER, WRONG] = [" she", " he"];
const PAIR_ARGS = ["--clean", CLEAN, "--corrupted", CORRUPTED, "--answer", ANSWER, "--wrong", WRONG];

function near(got: number, want: number, what: string, tol = 1e-4): void {
  assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${what}: ${got} vs ${want}`);
}

FAMILY_CASES.forEach((family, i) => {
  describe(`${family.name}: CLI and explorer`, () => {
    const { dir } = writeFamilyCheckpoint(root, i);
    // What the CLI and the explorer load by default: weight processing on.
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
    after(() => model.dispose());
    const { nLayers: L, nHeads: H, dMlp } = model.cfg;
    const cleanTokens = model.toTokens(CLEAN);
    const corruptedTokens = model.toTokens(CORRUPTED);
    const [a, w] = [model.toSingleToken(ANSWER), model.toSingleToken(WRONG)];
    const n = cleanTokens.length;
    assert.equal(corruptedTokens.length, n);

    /** logit(answer) − logit(wrong) at the last position of one prompt, with optional hooks. */
    const logitDiff = (tokens: number[], fwdHooks: [string, (t: Tensor) => void][] = []) => {
      const row = model.run([tokens], { logits: "last", fwdHooks }).data;
      return row[a] - row[w];
    };
    const [cleanDiff, corruptedDiff] = [logitDiff(cleanTokens), logitDiff(corruptedTokens)];

    async function json(args: string[]): Promise<Record<string, any>> {
      const out = await runCli([...args, "--model", dir, "--json"]);
      assert.equal(out.code, 0, out.stderr);
      return JSON.parse(out.stdout);
    }

    test("predict: the in-process run's top tokens and logits", async () => {
      const out = await json(["predict", "-k", "5", CLEAN]);
      assert.deepEqual(out.tokens, cleanTokens);
      const row = model.run([cleanTokens], { logits: "last" }).data;
      const order = Array.from(row.keys()).sort((x, y) => row[y] - row[x]);
      assert.deepEqual(
        out.top.map((t: { token: number }) => t.token),
        order.slice(0, 5),
      );
      for (const t of out.top) near(t.logit, row[t.token], `logit of ${t.token}`);
    });

    test("patch resid_pre: each cell = the corrupted run with that position's clean residual, by hooks", async () => {
      const out = await json(["patch", ...PAIR_ARGS, "-t", "resid_pre"]);
      assert.deepEqual(out.axes, ["layer", "pos"]);
      near(out.clean, cleanDiff, "clean");
      near(out.corrupted, corruptedDiff, "corrupted");
      const D = model.cfg.dModel;
      for (let l = 0; l < L; l++) {
        const hook = `blocks.${l}.hook_resid_pre`;
        const src = model.runWithCache([cleanTokens], { namesFilter: [hook] }).cache.get(hook).data;
        for (let p = 0; p < n; p++) {
          const patched = logitDiff(corruptedTokens, [
            [hook, (t) => t.data.set(src.subarray(p * D, (p + 1) * D), p * D)],
          ]);
          near(out.values[l][p], (patched - corruptedDiff) / (cleanDiff - corruptedDiff), `L${l} pos ${p}`);
        }
      }
    });

    test("attribute: the logit difference; the residual's parts sum to its final value; each head's DLA in float64", async () => {
      const out = await json(["attribute", "-p", CLEAN, "-a", ANSWER, "-w", WRONG]);
      near(out.logitDiff, cleanDiff, "logit diff");
      const parts: number[] = out.decomposeResid.values;
      assert.deepEqual(out.decomposeResid.labels.slice(-2), [`${L - 1}_attn_out`, `${L - 1}_mlp_out`]);
      near(
        parts.reduce((s, x) => s + x, 0),
        out.accumulatedResid.values.at(-1),
        "sum of parts",
      );
      // Each head's direct logit attribution, in float64 from the cache and the processed weights: its
      // output at the last position, z_h · W_O[h], divided by ln_final's cached scale (the folded final
      // norm), on the answer's minus the wrong token's W_U column.
      const { dModel: D, dHead: dh } = model.cfg;
      const names = [
        "ln_final.hook_scale",
        ...Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_z`),
      ];
      const { cache } = model.runWithCache([cleanTokens], { namesFilter: names });
      const scale = cache.get("ln_final.hook_scale").data[n - 1];
      const { W_U, blocks } = model.weights;
      const V = model.cfg.dVocab;
      assert.equal(out.heads.length, L);
      for (let l = 0; l < L; l++) {
        const z = cache.get(`blocks.${l}.attn.hook_z`).data; // [1, n, H, dh]
        const W_O = blocks[l].W_O.data; // [H, dh, D]
        for (let h = 0; h < H; h++) {
          let dla = 0;
          for (let d = 0; d < D; d++) {
            let x = 0;
            for (let k = 0; k < dh; k++) x += z[((n - 1) * H + h) * dh + k] * W_O[(h * dh + k) * D + d];
            dla += (x / scale) * (W_U.data[d * V + a] - W_U.data[d * V + w]);
          }
          near(out.heads[l][h], dla, `L${l}H${h}`);
        }
      }
    });

    test("circuit: baselines are the plain forward; the circuit's normalised metric; the exact check of the top 4", async () => {
      const out = await json([
        "circuit",
        ...PAIR_ARGS,
        "--method",
        "eap-ig",
        "--top-n",
        "8",
        "--compare-top",
        "4",
      ]);
      near(out.baseline.clean, cleanDiff, "clean");
      near(out.baseline.corrupted, corruptedDiff, "corrupted");
      near(
        out.circuit.normalized,
        (out.circuit.metric - corruptedDiff) / (cleanDiff - corruptedDiff),
        "normalized",
      );
      // The top 8 pruned to input→logits paths (possibly none on a random model).
      assert.ok(out.circuit.topN === 8 && out.circuit.edges.length <= 8);
      assert.equal(out.comparison.edges.length, 4);
    });

    test("index + neuron: the page's activations on a text are mlp.hook_post in-process", async () => {
      const corpus = join(root, `corpus-${i}.txt`);
      writeFileSync(
        corpus,
        "Lily was happy because she had a new toy.\n\nTim was sad because he lost his ball.\n",
      );
      const index = join(root, `index-${i}`);
      const built = await runCli([
        "index",
        "--model",
        dir,
        "-c",
        corpus,
        "--context-len",
        "8",
        "-o",
        index,
        "--json",
      ]);
      assert.equal(built.code, 0, built.stderr);
      const layer = L - 1;
      const page = await json(["neuron", "-l", String(layer), "-n", "5", "-i", index, "-t", CLEAN]);
      const hook = `blocks.${layer}.mlp.hook_post`;
      const post = model.runWithCache([cleanTokens], { namesFilter: [hook] }).cache.get(hook).data;
      const acts: number[] = page.ownText.activations;
      assert.equal(acts.length, n);
      for (const [p, v] of acts.entries()) near(v, post[p * dMlp + 5], `activation at ${p}`);
    });

    test("explorer API: info, predictions and attention as in-process; a patching job's values by hooks", async () => {
      const { server, api } = await startFixtureServer({}, dir);
      try {
        const post = async (path: string, body: unknown, status = 200) => {
          const res = await api(path, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          assert.equal(res.status, status, path);
          return (await res.json()) as Record<string, any>;
        };
        const info = (await (await api("/api/info")).json()) as Record<string, any>;
        assert.deepEqual([info.cfg.nLayers, info.cfg.nHeads, info.cfg.dMlp], [L, H, dMlp]);
        const pred = await post("/api/predict", { prompt: CLEAN, answer: ANSWER, wrong: WRONG, topK: 3 });
        assert.deepEqual(pred.tokens, cleanTokens);
        near(pred.logitDiff, cleanDiff, "logit diff");
        const att = await post("/api/attention", { prompt: CLEAN, layer: L - 1, head: 1 });
        const hook = `blocks.${L - 1}.attn.hook_pattern`;
        const pattern = model.runWithCache([cleanTokens], { namesFilter: [hook] }).cache.get(hook).data;
        const rows: number[][] = att.data.heads[0].pattern;
        for (let q = 0; q < n; q++)
          for (let k = 0; k < n; k++) near(rows[q][k], pattern[(n + q) * n + k], `pattern[${q}][${k}]`);

        const job = await post(
          "/api/jobs",
          {
            kind: "patching",
            clean: CLEAN,
            corrupted: CORRUPTED,
            answer: ANSWER,
            wrong: WRONG,
            target: "mlp_out",
          },
          202,
        );
        // The job's event stream ends when the job finishes; its last event is the finished job.
        const events = await (await api(`/api/jobs/${job.id}/events`)).text();
        const done = JSON.parse(
          events
            .trim()
            .split("\n\n")
            .at(-1)!
            .replace(/^data: /, ""),
        );
        assert.equal(done.status, "done", JSON.stringify(done));
        assert.deepEqual(done.result.axes, ["layer", "pos"]);
        const mlpHook = `blocks.0.hook_mlp_out`;
        const src = model.runWithCache([cleanTokens], { namesFilter: [mlpHook] }).cache.get(mlpHook).data;
        const D = model.cfg.dModel;
        const p = n - 1;
        const patched = logitDiff(corruptedTokens, [
          [mlpHook, (t) => t.data.set(src.subarray(p * D, (p + 1) * D), p * D)],
        ]);
        near(done.result.values[0][p], (patched - corruptedDiff) / (cleanDiff - corruptedDiff), "L0 mlp_out");
      } finally {
        await server.close();
      }
    });
  });
});
