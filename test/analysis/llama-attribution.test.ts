/**
 * Logit attribution on stories260k against numbers computed independently from the float64 reference's
 * activations and the checkpoint's Hugging Face tensors: per-head direct logit attribution through the
 * final RMSNorm (cached scale, no centring) and the logit lens (each residual divided by its own RMS).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { attributeLogitDiff } from "../../src/analysis/attribute.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import {
  llamaReferenceFromTensors,
  readHfTensors,
  readLlamaRefConfig,
  referenceEncode,
  referenceHeadDla,
} from "../helpers/llama-reference.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const SHE = 358;
const HE = 281;
const prompts = ["Once upon a time, Lily was happy. Then", "Tim was sad because"].map((t) =>
  referenceEncode(STORIES, t),
);

const c = readLlamaRefConfig(STORIES);
const hf = readHfTensors(STORIES);
const E = hf.get("model.embed_tokens.weight")!.data; // tied: lm_head = embed_tokens
const normW = hf.get("model.norm.weight")!.data;
/** The residual direction read by logit(she) - logit(he), with the final RMSNorm's weight (for the lens). */
const dir = Float64Array.from({ length: c.D }, (_, d) => (E[SHE * c.D + d] - E[HE * c.D + d]) * normW[d]);

for (const processing of [undefined, false] as const) {
  test(`stories260k head DLA and logit lens match the reference (${processing === false ? "raw" : "processed"})`, () => {
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(STORIES), { processing });
    const r = attributeLogitDiff(model, prompts, SHE, HE, { logitLens: true });
    const { D, L } = c;
    prompts.forEach((tokens, b) => {
      const ref = llamaReferenceFromTensors(c, hf, tokens);
      const last = tokens.length - 1;
      const dla = referenceHeadDla(c, hf, ref, SHE, HE);
      for (let i = 0; i < c.L * c.H; i++) {
        const got = r.heads.values[i * prompts.length + b];
        assert.ok(
          Math.abs(got - dla[i]) < 1e-4,
          `L${Math.floor(i / c.H)}H${i % c.H} prompt ${b}: ${got} vs ${dla[i]}`,
        );
      }
      // Logit lens: resid_pre of each layer divided by its own RMS (no centring), dotted with the direction.
      for (let l = 0; l < L; l++) {
        const x = ref.get(`blocks.${l}.hook_resid_pre`)!.data.subarray(last * D, (last + 1) * D);
        const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / D + c.eps);
        const want = x.reduce((s, v, d) => s + v * dir[d], 0) / rms;
        const i = r.accumulated.labels.indexOf(`${l}_pre`);
        const got = r.accumulated.values[i * prompts.length + b];
        assert.ok(Math.abs(got - want) < 1e-4, `lens ${l}_pre prompt ${b}: ${got} vs ${want}`);
      }
      // Rotary positions add nothing to the residual stream: no pos_embed piece.
      assert.deepEqual(r.decomposed.labels.slice(0, 2), ["embed", "0_attn_out"]);
    });
    model.dispose();
  });
}
