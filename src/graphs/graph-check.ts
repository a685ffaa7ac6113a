/**
 * Checks a graph against the real model (circuit-tracer's `feature_intervention`): set top features'
 * activations (0 ablates them) in the real model with each layer's transcoder spliced in — its features
 * recomputed from the live MLP input, plus the prompt's error node held constant, so the output is the real
 * one before the edit — and compare the target logit's change with what the graph predicts: the direct
 * effect (the edge into the logit) and the total effect through every feature path (the linear model's).
 *
 * What is and is not exact: with `freeze` (patterns and every norm scale pinned at the prompt's values, as
 * the graph is built) the spliced model is piecewise linear in the activations, so the measured change equals
 * the total prediction as long as no downstream feature crosses its threshold, and for a last-layer feature
 * equals the direct edge. Without `freeze` attention patterns and norm scales respond (ln_final's scale among
 * them), so the predictions are first-order only.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { HookSpec } from "../model/hooks.ts";
import { Tensor } from "../tensor/tensor.ts";
import { demeanedReadouts } from "./attribute-graph.ts";
import { type AttributionGraph, nodeRanges } from "./attribution-graph.ts";
import { type ReplacementRun, reconstructLayer } from "./replacement-run.ts";
import { encodeTranscoder, type TranscoderSet } from "./transcoder-set.ts";

/** A feature's activation set to `value` (matrix index into graph.features). */
export interface FeatureEdit {
  index: number;
  value: number;
}

export interface InterventionOptions {
  /** Pin attention patterns and norm scales at the prompt's values (the graph's own linearisation). */
  freeze?: boolean;
}

/**
 * The change of the demeaned logit of `token` at the last position when `edits` are applied in the real model
 * with the transcoders spliced in (errors held at the prompt's values). The logit is read as the graph seeds
 * it — ln_final's output times W_U[:, token] minus W_U's vocabulary mean — so for a model that soft-caps its
 * logits it is the pre-cap one, the quantity the graph's edges predict, not the capped output.
 */
export function measureIntervention(
  model: HookedTransformer,
  set: TranscoderSet,
  attributed: { graph: AttributionGraph; run: ReplacementRun },
  token: number,
  edits: readonly FeatureEdit[],
  opts: InterventionOptions = {},
): number {
  const [readout] = demeanedReadouts(model, [token]);
  const before = splicedDemeanedLogit(model, set, attributed, readout, [], opts);
  const after = splicedDemeanedLogit(model, set, attributed, readout, edits, opts);
  return after - before;
}

function splicedDemeanedLogit(
  model: HookedTransformer,
  set: TranscoderSet,
  { graph, run }: { graph: AttributionGraph; run: ReplacementRun },
  readoutD: Float64Array,
  edits: readonly FeatureEdit[],
  opts: InterventionOptions,
): number {
  const { nLayers: L, dModel: D } = model.cfg;
  const P = graph.inputTokens.length;
  const byLayer = new Map<number, FeatureEdit[]>();
  for (const e of edits) {
    const f = graph.features[e.index];
    if (!f) throw new Error(`feature index ${e.index} is not in the graph (it has ${graph.features.length})`);
    byLayer.set(f.layer, [...(byLayer.get(f.layer) ?? []), e]);
  }
  const inputs: Float32Array[] = [];
  /** [layer][pos]: the spliced features' activations, kept for a cross-layer transcoder's later layers. */
  const acts: Float32Array[][] = [];
  const hooks: HookSpec[] = [];
  const frozen = (name: string) => {
    const t = run.cache.get(name);
    return new Tensor(t.data.slice(), t.shape); // a copy: the run's cache stays the prompt's
  };
  for (let l = 0; l < L; l++) {
    hooks.push([
      `blocks.${l}.${set.featureInputHook}`,
      (act: Tensor) => {
        inputs[l] = act.data.slice();
      },
    ]);
    hooks.push([
      `blocks.${l}.${set.featureOutputHook}`,
      (act: Tensor) => {
        const tc = set.transcoders[l];
        const out = act.data;
        acts[l] = [];
        // Position 0 keeps the real MLP output: the graph has no feature or error there (a constant).
        for (let p = 1; p < P; p++) {
          const x = inputs[l].subarray(p * D, (p + 1) * D);
          const a = encodeTranscoder(tc, x);
          for (const e of byLayer.get(l) ?? []) {
            const f = graph.features[e.index];
            if (f.pos === p) a[f.feature] = e.value;
          }
          acts[l][p] = a;
          const recon = reconstructLayer(
            set,
            l,
            acts.map((layer) => layer[p]),
            inputs.map((x) => x.subarray(p * D, (p + 1) * D)),
          );
          const eo = (l * P + p) * D;
          for (let d = 0; d < D; d++) out[p * D + d] = recon[d] + run.errors[eo + d];
        }
        return act;
      },
    ]);
    if (opts.freeze) {
      for (const s of ["attn.hook_pattern", "ln1.hook_scale", "ln2.hook_scale"])
        hooks.push([`blocks.${l}.${s}`, () => frozen(`blocks.${l}.${s}`)]);
    }
  }
  if (opts.freeze) hooks.push(["ln_final.hook_scale", () => frozen("ln_final.hook_scale")]);
  // b_U's share of the demeaned logit is the same in every run, so it is left out of both.
  const name = "ln_final.hook_normalized";
  const { cache } = model.runWithCache([[...graph.inputTokens]], {
    fwdHooks: hooks,
    namesFilter: [name],
    logits: "none",
  });
  const x = cache.get(name).data.subarray((P - 1) * D, P * D);
  let logit = 0;
  for (let d = 0; d < D; d++) logit += x[d] * readoutD[d];
  return logit;
}

/**
 * The graph's predictions for the logit node `logit` (index among the logit nodes): per feature, the change of
 * the logit per unit of its activation, directly (A[logit, f] / a_f) and in total through every feature path
 * of the linear model (τ_f = M[logit, f] + Σ_u τ_u M[u, f], M[u, f] = A[u, f] / a_f).
 */
export function featureLogitEffects(
  graph: AttributionGraph,
  logit = 0,
): { direct: Float64Array; total: Float64Array } {
  const r = nodeRanges(graph);
  const n = r.nNodes;
  const A = graph.adjacency;
  const row = r.logitStart + logit;
  const nF = r.nFeatures;
  const direct = new Float64Array(nF);
  const total = new Float64Array(nF);
  // Features are sorted by layer and a feature feeds only later layers: one sweep from the top.
  for (let f = nF - 1; f >= 0; f--) {
    const a = graph.features[f].activation;
    direct[f] = A[row * n + f] / a;
    let t = direct[f];
    for (let u = f + 1; u < nF; u++) {
      const e = A[u * n + f];
      if (e !== 0) t += total[u] * (e / a);
    }
    total[f] = t;
  }
  return { direct, total };
}

export interface FeatureCheck {
  index: number;
  nodeId: string;
  activation: number;
  /** The graph's predicted change of the target logit (demeaned) when the feature is set to `value`. */
  predictedDirect: number;
  predictedTotal: number;
  /** The change measured in the real model. */
  measured: number;
}

/**
 * Sets each of the `top` features with the largest predicted total effect on the target logit (the first
 * logit node) to `scale` × its activation (0: ablation), one at a time, and measures the change.
 */
export function checkTopFeatures(
  model: HookedTransformer,
  set: TranscoderSet,
  attributed: { graph: AttributionGraph; run: ReplacementRun },
  opts: { top: number; scale?: number; freeze?: boolean },
): FeatureCheck[] {
  const { graph } = attributed;
  const scale = opts.scale ?? 0;
  const { direct, total } = featureLogitEffects(graph);
  const order = Array.from(graph.features.keys())
    .sort(
      (i, j) =>
        Math.abs(total[j] * graph.features[j].activation) - Math.abs(total[i] * graph.features[i].activation),
    )
    .slice(0, opts.top);
  const token = graph.logitTokens[0];
  return order.map((i) => {
    const f = graph.features[i];
    const delta = (scale - 1) * f.activation; // the change of its activation
    return {
      index: i,
      nodeId: `${f.layer}_${f.feature}_${f.pos}`,
      activation: f.activation,
      predictedDirect: delta * direct[i],
      predictedTotal: delta * total[i],
      measured: measureIntervention(
        model,
        set,
        attributed,
        token,
        [{ index: i, value: scale * f.activation }],
        {
          freeze: opts.freeze,
        },
      ),
    };
  });
}
