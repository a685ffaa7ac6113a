/**
 * `transcoders eval`: how well a transcoder set stands in for the model's MLPs on a corpus. Definitions as
 * `sae eval` (src/sae/evaluate.ts, issue 29), with every layer's output hook as the replaced site: each text
 * is tokenized as the model does (BOS first) and cut to `context` tokens; positions ≥ 1 are evaluated.
 *
 *   layers[l].explained_variance  1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖² of layer l's output hook, both from the clean run
 *                                 (ŷ: the transcoder applied to the clean input hook)
 *   layers[l].l0, dead_fraction   mean non-zero features per token; share of features never non-zero
 *   ce_loss_clean                 mean next-token cross-entropy of the model
 *   ce_loss_with_transcoders      the same with EVERY layer's output hook replaced by its transcoder's
 *                                 prediction from that run's own input hook (errors compound, as in the
 *                                 replacement model without error nodes)
 *   ce_loss_zero_ablation         the same with every output hook set to zero
 *   ce_loss_score                 (CE_zero − CE_transcoders) / (CE_zero − CE_clean)
 * Position 0 (BOS) is always left as it is.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { HookSpec } from "../model/hooks.ts";
import { type CorpusEvalOptions, DEFAULT_EVAL_CONTEXT, forEachTextBatch } from "../sae/evaluate.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { reconstructMlpOut } from "./replacement-run.ts";
import { encodeTranscoder, requirePerLayerSet, type TranscoderSet } from "./transcoder-set.ts";

export interface TranscoderLayerEval {
  layer: number;
  l0: number;
  explained_variance: number;
  dead_fraction: number;
}

export interface TranscoderSetEval {
  tokens: number;
  ce_loss_clean: number;
  ce_loss_with_transcoders: number;
  ce_loss_zero_ablation: number;
  ce_loss_score: number;
  layers: TranscoderLayerEval[];
}

interface LayerStats {
  sumY: Float64Array;
  sumSqY: number;
  sumSqErr: number;
  active: number;
  everFired: Uint8Array;
}

export async function evaluateTranscoderSet(
  model: HookedTransformer,
  set: TranscoderSet,
  texts: Iterable<string>,
  opts: CorpusEvalOptions = {},
): Promise<TranscoderSetEval> {
  const context = opts.context ?? DEFAULT_EVAL_CONTEXT;
  if (!Number.isInteger(context) || context < 2)
    throw new Error(`--context must be at least 2 tokens (BOS and one more), got ${context}`);
  requirePerLayerSet(set, "transcoders eval");
  const L = model.cfg.nLayers;
  const D = model.cfg.dModel;
  if (set.transcoders.length !== L || set.transcoders[0].dModel !== D)
    throw new Error(
      `The transcoder set has ${set.transcoders.length} layers of d_model ${set.transcoders[0].dModel}; the model has ${L} of ${D}: use the model's own set`,
    );
  const batchSize = opts.batchSize ?? 8;
  const inHook = (l: number) => `blocks.${l}.${set.featureInputHook}`;
  const outHook = (l: number) => `blocks.${l}.${set.featureOutputHook}`;
  const stats: LayerStats[] = set.transcoders.map((tc) => ({
    sumY: new Float64Array(D),
    sumSqY: 0,
    sumSqErr: 0,
    active: 0,
    everFired: new Uint8Array(tc.dTranscoder),
  }));
  const ce = { clean: 0, replaced: 0, zero: 0, count: 0 };
  let tokens = 0;

  const runBatch = (batch: number[][]) => {
    const lengths = batch.map((t) => t.length);
    /** Offsets of the evaluated rows (b, p ≥ 1) of a [B, P, D] activation. */
    const rows = (act: Tensor) => {
      const P = act.size / (batch.length * D);
      const out: number[] = [];
      for (let b = 0; b < batch.length; b++) for (let p = 1; p < lengths[b]; p++) out.push((b * P + p) * D);
      return out;
    };
    /** The transcoder's prediction at each evaluated row, from the input hook's activation kept at `inputs`. */
    const predictions = (l: number, inputs: Float32Array, offsets: number[], record: boolean) => {
      const tc = set.transcoders[l];
      return offsets.map((o) => {
        const x = inputs.subarray(o, o + D);
        const codes = encodeTranscoder(tc, x);
        if (record)
          for (let f = 0; f < codes.length; f++)
            if (codes[f] !== 0) {
              stats[l].active++;
              stats[l].everFired[f] = 1;
            }
        return reconstructMlpOut(tc, codes, x);
      });
    };
    const inputs: Float32Array[] = new Array(L);
    const keepInputs: HookSpec[] = Array.from({ length: L }, (_, l) => [
      inHook(l),
      (act: Tensor) => {
        inputs[l] = act.data.slice();
      },
    ]);
    const measure: HookSpec[] = Array.from({ length: L }, (_, l) => [
      outHook(l),
      (act: Tensor) => {
        const offsets = rows(act);
        const yHat = predictions(l, inputs[l], offsets, true);
        const s = stats[l];
        offsets.forEach((o, r) => {
          for (let i = 0; i < D; i++) {
            const y = act.data[o + i];
            s.sumY[i] += y;
            s.sumSqY += y * y;
            s.sumSqErr += (y - yHat[r][i]) ** 2;
          }
        });
      },
    ]);
    const replace: HookSpec[] = Array.from({ length: L }, (_, l) => [
      outHook(l),
      (act: Tensor) => {
        const offsets = rows(act);
        const yHat = predictions(l, inputs[l], offsets, false);
        offsets.forEach((o, r) => {
          act.data.set(yHat[r], o);
        });
      },
    ]);
    const zero: HookSpec[] = Array.from({ length: L }, (_, l) => [
      outHook(l),
      (act: Tensor) => {
        for (const o of rows(act)) act.data.fill(0, o, o + D);
      },
    ]);
    const total = (hooks: HookSpec[]) => {
      const { perToken } = model.loss(batch, { fwdHooks: hooks });
      return perToken.reduce((a, row) => a + row.reduce((s, v) => s + v, 0), 0);
    };
    ce.clean += total([...keepInputs, ...measure]);
    ce.replaced += total([...keepInputs, ...replace]);
    ce.zero += total(zero);
    const n = lengths.reduce((a, len) => a + len - 1, 0);
    ce.count += n;
    tokens += n;
  };

  await forEachTextBatch(
    model,
    texts,
    { context, batchSize, signal: opts.signal, onBatch: opts.onBatch, what: "Transcoder evaluation" },
    runBatch,
  );
  if (tokens === 0) throw new Error("No text gave 2 or more tokens: the corpus has nothing to evaluate on");
  const clean = ce.clean / ce.count;
  const replaced = ce.replaced / ce.count;
  const zeroed = ce.zero / ce.count;
  return {
    tokens,
    ce_loss_clean: clean,
    ce_loss_with_transcoders: replaced,
    ce_loss_zero_ablation: zeroed,
    ce_loss_score: (zeroed - replaced) / (zeroed - clean),
    layers: stats.map((s, l) => {
      let meanSq = 0;
      for (let i = 0; i < D; i++) meanSq += (s.sumY[i] / tokens) ** 2;
      let fired = 0;
      for (const f of s.everFired) fired += f;
      return {
        layer: l,
        l0: s.active / tokens,
        explained_variance: 1 - s.sumSqErr / (s.sumSqY - tokens * meanSq),
        dead_fraction: 1 - fired / s.everFired.length,
      };
    }),
  };
}
