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
/** The residual direction read by logit(she) - logit(he), with the final RMSNorm's weight. */
const dir = Float64Array.from({ length: c.D }, (_, d) => (E[SHE * c.D + d] - E[HE * c.D + d]) * normW[d]);

for (const processing of [undefined, false] as const) {
  test(`stories260k head DLA and logit lens match the reference (${processing === false ? "raw" : "processed"})`, () => {
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(STORIES), { processing });
    const r = attributeLogitDiff(model, prompts, SHE, HE, { logitLens: true });
    const { D, H, dh, L } = c;
    prompts.forEach((tokens, b) => {
      const ref = llamaReferenceFromTensors(c, hf, tokens);
      const last = tokens.length - 1;
      const scale = ref.get("ln_final.hook_scale")!.data[last];
      // Head h of layer l writes z[last, h] @ o_proj[:, h*dh:(h+1)*dh]^T; its attribution is that · dir / scale.
      for (let l = 0; l < L; l++) {
        const z = ref.get(`blocks.${l}.attn.hook_z`)!.data;
        const Wo = hf.get(`model.layers.${l}.self_attn.o_proj.weight`)!.data; // [D, H*dh]
        for (let h = 0; h < H; h++) {
          let dot = 0;
          for (let d = 0; d < D; d++) {
            let write = 0;
            for (let e = 0; e < dh; e++) write += z[(last * H + h) * dh + e] * Wo[d * H * dh + h * dh + e];
            dot += write * dir[d];
          }
          const got = r.heads.values[(l * H + h) * prompts.length + b];
          assert.ok(Math.abs(got - dot / scale) < 1e-4, `L${l}H${h} prompt ${b}: ${got} vs ${dot / scale}`);
        }
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
