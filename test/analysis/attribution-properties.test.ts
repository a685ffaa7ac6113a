import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { logitDiff } from "../../src/analysis/answer-metrics.ts";
import {
  applyLnToStack,
  type LnMode,
  logitAttrs,
  logitDiffDirections,
  neuronLogitAttrs,
} from "../../src/analysis/logit-attribution.ts";
import { selectPositions } from "../../src/analysis/positions.ts";
import {
  accumulatedResid,
  decomposeResid,
  stackHeadResults,
  stackNeuronResults,
} from "../../src/analysis/residual-stack.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { referenceEncode } from "../helpers/llama-reference.ts";

const root = mkdtempSync(join(tmpdir(), "cs-attr-"));
after(() => rmSync(root, { recursive: true, force: true }));

const cfg: ModelConfig = gpt2Config({
  nLayers: 2,
  nHeads: 3,
  dModel: 24,
  dHead: 8,
  dMlp: 40,
  nCtx: 12,
  // GPT-2's vocabulary, so the tokenizer's ids (BOS is 50256) are valid; padding uses id 0 (src/model/input.ts).
  dVocab: 50257,
  lnEps: 1e-5,
  act: "gelu_new",
});
const dir = join(root, "ckpt");
makeRandomCheckpoint(dir, cfg, { seed: 7, std: 0.3 });

// Right-padded batch of different lengths: attribution must read each prompt's own final position.
const rng = mulberry32(3);
const randomPrompts = [7, 10, 4].map((n) => Array.from({ length: n }, () => Math.floor(rng() * 1000)));

const STORIES = join(REPO_ROOT, "models/stories260k");
const SHE = 358;
const HE = 281;
/** The bundled Llama-architecture model: RMSNorm (no centring), rotary positions (no pos_embed), GQA. */
const storiesPrompts = [
  "Once upon a time, Lily was happy. Then",
  "Tim was sad because",
  "Lily and Tim went to the park. Then",
].map((t) => referenceEncode(STORIES, t));

const CASES = [
  ...([undefined, false] as const).map((processing) => ({
    name: `${processing === false ? "unprocessed" : "processed"} random GPT-2`,
    load: () => HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference", processing }),
    prompts: randomPrompts,
    answers: [5, 17, 40],
    wrongs: [9, 2, 33],
  })),
  ...([undefined, false] as const).map((processing) => ({
    name: `${processing === false ? "unprocessed" : "processed"} stories260k`,
    load: () => HookedTransformer.fromCheckpoint(loadCheckpoint(STORIES), { processing }),
    prompts: storiesPrompts,
    answers: [SHE, HE, SHE],
    wrongs: [HE, SHE, HE],
  })),
];

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]} (tol ${tol})`);
}

for (const { name, load, prompts, answers, wrongs } of CASES) {
  describe(`attribution properties, ${name}`, () => {
    const model = load();
    const cfg = model.cfg;
    const all = prompts.map((_, b) => b);
    const B = prompts.length;
    const { cache, logits, lengths } = model.runWithCache(prompts);
    const dirs = logitDiffDirections(model, answers, wrongs, prompts.length);
    const ld = logitDiff(logits!, lengths, answers, wrongs);

    it("final-position logit difference agrees between all-position and last-position logits", () => {
      const last = model.run(prompts, { logits: "last" });
      close(logitDiff(last, lengths, answers, wrongs).perPrompt, ld.perPrompt, 1e-5, "logit diff");
    });

    it("decomposed parts sum to the logit difference minus the offset (cached LN scale)", () => {
      const attr = logitAttrs(model, cache, decomposeResid(model, cache), dirs);
      const sums = all.map((b) => {
        let s = 0;
        for (let i = 0; i < attr.labels.length; i++) s += attr.values[i * attr.batch + b];
        return s;
      });
      close(
        sums,
        ld.perPrompt.map((x, b) => x - dirs.offsets[b]),
        1e-4,
        "sum of parts",
      );
    });

    it("final_post of accumulated_resid is the whole logit difference minus the offset, in both LN modes", () => {
      for (const ln of ["cached", "recompute"] as LnMode[]) {
        const attr = logitAttrs(model, cache, accumulatedResid(model, cache, { inclMid: true }), dirs, {
          ln,
        });
        const last = attr.labels.length - 1;
        assert.equal(attr.labels[last], "final_post");
        close(
          all.map((b) => attr.values[last * B + b]),
          ld.perPrompt.map((x, b) => x - dirs.offsets[b]),
          1e-4,
          `final_post (${ln})`,
        );
      }
    });

    it("head results plus b_O equal each layer's attention output, at every position", () => {
      const rs = stackHeadResults(model, cache, { pos: "all" });
      const { nHeads: H, dModel: D } = cfg;
      const rows = rs.sel.batch * rs.sel.nPos;
      for (let l = 0; l < cfg.nLayers; l++) {
        const sum = new Float64Array(rows * D);
        const b_O = model.weights.blocks[l].b_O.data;
        for (let r = 0; r < rows; r++) for (let d = 0; d < D; d++) sum[r * D + d] = b_O[d];
        for (let h = 0; h < H; h++) {
          const piece = rs.stack.data.subarray((l * H + h) * rows * D, (l * H + h + 1) * rows * D);
          for (let i = 0; i < piece.length; i++) sum[i] += piece[i];
        }
        close(sum, cache.get("attn_out", l).data, 1e-4, `attn_out ${l}`);
      }
    });

    it("neuron results plus b_out equal each layer's MLP output", () => {
      const rs = stackNeuronResults(model, cache, { pos: "all" });
      const { dMlp, dModel: D } = cfg;
      const rows = rs.sel.batch * rs.sel.nPos;
      for (let l = 0; l < cfg.nLayers; l++) {
        const sum = new Float64Array(rows * D);
        const b_out = model.weights.blocks[l].b_out.data;
        for (let r = 0; r < rows; r++) for (let d = 0; d < D; d++) sum[r * D + d] = b_out[d];
        for (let n = 0; n < dMlp; n++) {
          const piece = rs.stack.data.subarray((l * dMlp + n) * rows * D, (l * dMlp + n + 1) * rows * D);
          for (let i = 0; i < piece.length; i++) sum[i] += piece[i];
        }
        close(sum, cache.get("mlp_out", l).data, 1e-4, `mlp_out ${l}`);
      }
    });

    it("projected neuron attribution equals the full neuron stack projected, in every LN mode", () => {
      const full = stackNeuronResults(model, cache);
      for (const ln of ["cached", "recompute", "none"] as LnMode[]) {
        const a = neuronLogitAttrs(model, cache, dirs, { ln });
        const b = logitAttrs(model, cache, full, dirs, { ln });
        assert.deepEqual(a.labels, b.labels);
        close(a.values, b.values, 1e-5, `neurons (${ln})`);
        close(a.mean, b.mean, 1e-5, `neuron means (${ln})`);
      }
    });

    it("applyLnToStack then a raw projection equals projecting with the LN mode", () => {
      const rs = accumulatedResid(model, cache, { inclMid: true, pos: "all" });
      for (const ln of ["cached", "recompute"] as LnMode[]) {
        const viaStack = logitAttrs(model, cache, applyLnToStack(model, cache, rs, { ln }), dirs, {
          ln: "none",
        });
        close(viaStack.values, logitAttrs(model, cache, rs, dirs, { ln }).values, 1e-4, `apply_ln (${ln})`);
      }
    });

    it("the default position is each prompt's own final real position", () => {
      const every = logitAttrs(model, cache, decomposeResid(model, cache, { pos: "all" }), dirs);
      const fin = logitAttrs(model, cache, decomposeResid(model, cache), dirs);
      const P = every.nPos;
      const picked: number[] = [];
      for (let i = 0; i < fin.labels.length; i++)
        for (let b = 0; b < B; b++) picked.push(every.values[(i * B + b) * P + lengths[b] - 1]);
      close(fin.values, picked, 1e-6, "final vs all");
      assert.deepEqual(
        lengths,
        prompts.map((p) => p.length),
      );
    });

    it("a negative position counts back from each prompt's own end: -1 is the final position", () => {
      const all = logitAttrs(model, cache, decomposeResid(model, cache, { pos: "all" }), dirs);
      const P = all.nPos;
      for (const back of [1, 3]) {
        const r = logitAttrs(model, cache, decomposeResid(model, cache, { pos: -back }), dirs);
        const picked: number[] = [];
        for (let i = 0; i < r.labels.length; i++)
          for (let b = 0; b < 3; b++) picked.push(all.values[(i * 3 + b) * P + lengths[b] - back]);
        close(r.values, picked, 1e-6, `pos -${back} vs all`);
      }
      assert.deepEqual(selectPositions([7, 10, 4], 10, -1), selectPositions([7, 10, 4], 10, "final"));
      assert.throws(() => selectPositions([7, 10, 4], 10, -5), /outside prompt 2 \(real length 4\)/);
    });
  });
}
