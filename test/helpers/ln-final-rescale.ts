/**
 * The real model's change of a demeaned logit when a last-layer feature at the last position is ablated
 * without freezing: nothing but the readout is downstream, so the only difference from the graph's edge is
 * ln_final's new scale. RMSNorm readout, no unembedding bias: demeaned logit = u · (x ⊙ w) / s. Removing the
 * write v = a W_dec[f] gives (s / s') (logit − edge) − logit, s' the RMS of x − v (the edge is v's contribution).
 */
import type { AttributionGraph } from "../../src/graphs/attribution-graph.ts";
import type { ReplacementRun } from "../../src/graphs/replacement-run.ts";
import type { TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";

export function lastLayerAblationUnfrozen(
  model: HookedTransformer,
  set: TranscoderSet,
  { graph, run }: { graph: AttributionGraph; run: ReplacementRun },
  a: { index: number; token: number; edge: number },
): { expected: number; scaleRatio: number } {
  const L = model.cfg.nLayers;
  const D = model.cfg.dModel;
  const last = graph.inputTokens.length - 1;
  const f = graph.features[a.index];
  const x = run.cache.get(`blocks.${L - 1}.hook_resid_post`).data.subarray(last * D, (last + 1) * D);
  const wDec = set.transcoders[L - 1].wDec;
  let sq = 0;
  for (let d = 0; d < D; d++) sq += (x[d] - f.activation * wDec[f.feature * D + d]) ** 2;
  const s2 = Math.sqrt(sq / D + model.cfg.lnEps);
  const s = run.cache.get("ln_final.hook_scale").data[last];
  const mean = run.lastLogits.reduce((u, v) => u + v, 0) / run.lastLogits.length;
  const logit = run.lastLogits[a.token] - mean;
  return { expected: (s / s2) * (logit - a.edge) - logit, scaleRatio: s / s2 };
}
