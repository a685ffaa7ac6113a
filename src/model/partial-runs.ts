/**
 * Partial runs of one prompt: record a run once, then continue many edited copies of it from any block,
 * sharing the recorded keys/values of the positions the edit cannot reach. Fast patching drives the
 * model through this interface, so the forward engine's buffers and arguments stay inside src/model.
 */
import type { PastKV } from "./forward.ts";
import type { HookedTransformer } from "./hooked-transformer.ts";
import { HookDispatcher, type HookSpec } from "./hooks.ts";

const FINAL_NORMALIZED = "ln_final.hook_normalized";

/** One prompt's recorded run (a batch of one, no padding). */
export interface RecordedRun {
  /** Positions of the prompt. */
  n: number;
  /** The requested hooks' activations, flat per-prompt layout. */
  acts: ReadonlyMap<string, Float32Array>;
  /** The residual stream entering block `layer`, [n, d_model]; `layer = n_layers` is ln_final's input. */
  residualEntering(layer: number): Float32Array;
  /** ln_final's output at the final position, [d_model]. */
  finalNormalized: Float32Array;
  /** Keys/values of every block, [n, H * d_head] each (continuable runs only). */
  kv: readonly PastKV[] | null;
}

/**
 * Runs `tokens` and records the activations of `hooks` and ln_final's final-position output; a
 * `continuable` run also records the residual entering every block and every block's keys and values.
 */
export function recordRun(
  model: HookedTransformer,
  tokens: readonly number[],
  opts: { hooks: ReadonlySet<string>; continuable: boolean },
): RecordedRun {
  const { nLayers: L, dModel: D } = model.cfg;
  const n = tokens.length;
  const residPreNames = new Set(Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`));
  const wanted = (name: string) =>
    opts.hooks.has(name) || name === FINAL_NORMALIZED || (opts.continuable && residPreNames.has(name));
  const hooks = new HookDispatcher(model.cfg, [], wanted);
  const res = model.forwardEngine.forward({
    batch: 1,
    pos: n,
    tokens: Int32Array.from(tokens),
    keepKV: opts.continuable,
    hooks,
    logits: "none",
  });
  const recorded = new Map<string, Float32Array>();
  for (const [name, t] of hooks.cache) recorded.set(name, t.data);
  const acts = new Map([...recorded].filter(([name]) => opts.hooks.has(name)));
  const normalized = recorded.get(FINAL_NORMALIZED)!;
  return {
    n,
    acts,
    residualEntering(layer) {
      if (!opts.continuable)
        throw new Error("internal: residualEntering of a run not recorded as continuable");
      return layer === L ? res.residual.data : recorded.get(`blocks.${layer}.hook_resid_pre`)!;
    },
    finalNormalized: normalized.slice((n - 1) * D, n * D),
    kv: res.presentKV,
  };
}

/** Where continued copies start: a block's input residual, or the embedding of the recorded tokens. */
export type ContinueFrom =
  | { block: number; residual: Float32Array /* [copies, n - fromPos, d_model] */ }
  | { embed: Int32Array /* [copies, n - fromPos] token ids */ };

/**
 * Continues `copies` copies of `run` at positions `fromPos..n-1`, from a block or the embedding. Positions
 * before `fromPos` are the recorded run's: their keys/values are shared, not recomputed. `hooks` edit the
 * copies on their way. Returns ln_final's output at the final position, [copies, d_model].
 * `finalPositionOnly`: no hook needs the last block's (or later) activations at other positions.
 */
export function continueRun(
  model: HookedTransformer,
  opts: {
    run: RecordedRun;
    copies: number;
    fromPos: number;
    from: ContinueFrom;
    hooks: readonly HookSpec[];
    finalPositionOnly: boolean;
  },
): Float32Array {
  const { dModel: D } = model.cfg;
  const { run, copies: C, fromPos: p0 } = opts;
  const startAtLayer = "block" in opts.from ? opts.from.block : 0;
  const past = run.kv!.map((kv, l) =>
    l >= startAtLayer && p0 > 0
      ? {
          k: kv.k.subarray(0, (p0 * kv.k.length) / run.n),
          v: kv.v.subarray(0, (p0 * kv.v.length) / run.n),
          len: p0,
          shared: true,
        }
      : null,
  );
  let normalized: Float32Array | null = null;
  const hooks = new HookDispatcher(model.cfg, [
    ...opts.hooks,
    [
      FINAL_NORMALIZED,
      (act) => {
        normalized = act.data;
      },
    ],
  ]);
  model.forwardEngine.forward({
    batch: C,
    pos: run.n - p0,
    pastLen: p0,
    ...("block" in opts.from ? { residual: opts.from.residual } : { tokens: opts.from.embed }),
    startAtLayer,
    past,
    hooks,
    logits: "none",
    finalPositionOnly: opts.finalPositionOnly,
  });
  if (!normalized) throw new Error("internal: ln_final.hook_normalized did not fire");
  const y: Float32Array = normalized;
  // [C, P or 1, D] → each copy's final position, [C, D].
  const P = y.length / (C * D);
  const rows = new Float32Array(C * D);
  for (let c = 0; c < C; c++) rows.set(y.subarray((c * P + P - 1) * D, (c * P + P) * D), c * D);
  return rows;
}
