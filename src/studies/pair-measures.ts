/**
 * The study's measurements, read off the shared modules in the per-prompt form its bootstrap needs:
 * attribution from src/analysis, exact activation patching and attribution patching from src/patching.
 * Nothing here computes a measurement itself; it batches the calls and reshapes their results.
 */
import { logitDiff } from "../analysis/answer-metrics.ts";
import { attributeLogitDiff } from "../analysis/attribute.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { activationPatching } from "../patching/activation-patching.ts";
import { type AttributionTarget, attributionPatchingAll } from "../patching/attribution-patching.ts";
import type { PatchTarget } from "../patching/targets.ts";
import type { PatchResult } from "../patching/types.ts";

/** The tokens of one group's pairs (all lists BOS-prefixed; clean[b] and corrupted[b] equally long). */
export interface PairTokens {
  clean: number[][];
  corrupted: number[][];
  answer: number[];
  wrong: number[];
}

/** Progress in prompt pairs: called with how many more are done. */
export type Tick = (n: number) => void;

function chunks(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
}

/** Attribution of the clean runs, per prompt: [prompt][piece] series and [prompt][layer][head] heads. */
export interface GroupAttribution {
  clean: number[];
  accumulatedLabels: string[];
  accumulated: number[][];
  decomposedLabels: string[];
  decomposed: number[][];
  heads: number[][][];
}

/** `attributeLogitDiff` over batches of the clean prompts, unpacked per prompt. */
export function groupAttribution(
  model: HookedTransformer,
  pairs: PairTokens,
  batchSize: number,
  tick: Tick = () => {},
): GroupAttribution {
  const { nLayers: L, nHeads: H } = model.cfg;
  const out: GroupAttribution = {
    clean: [],
    accumulatedLabels: [],
    accumulated: [],
    decomposedLabels: [],
    decomposed: [],
    heads: [],
  };
  for (const [s, e] of chunks(pairs.clean.length, batchSize)) {
    const r = attributeLogitDiff(
      model,
      pairs.clean.slice(s, e),
      pairs.answer.slice(s, e),
      pairs.wrong.slice(s, e),
    );
    out.accumulatedLabels = r.accumulated.labels;
    out.decomposedLabels = r.decomposed.labels;
    // values are [piece, batch, nPos = 1].
    const column = (v: Float64Array, n: number, b: number) =>
      Array.from({ length: n }, (_, i) => v[i * (e - s) + b]);
    for (let b = 0; b < e - s; b++) {
      out.clean.push(r.logitDiff.perPrompt[b]);
      out.accumulated.push(column(r.accumulated.values, r.accumulated.labels.length, b));
      out.decomposed.push(column(r.decomposed.values, r.decomposed.labels.length, b));
      const heads = column(r.heads.values, L * H, b);
      out.heads.push(Array.from({ length: L }, (_, l) => heads.slice(l * H, (l + 1) * H)));
    }
    tick(e - s);
  }
  return out;
}

/** logit(answer) - logit(wrong) of each prompt at its final position. */
export function logitDiffsOf(
  model: HookedTransformer,
  tokens: readonly number[][],
  answer: readonly number[],
  wrong: readonly number[],
  batchSize: number,
  tick: Tick = () => {},
): number[] {
  const out: number[] = [];
  for (const [s, e] of chunks(tokens.length, batchSize)) {
    const batch = tokens.slice(s, e);
    const logits = model.run(batch, { logits: "last" });
    const lengths = batch.map((t) => t.length);
    out.push(...logitDiff(logits, lengths, answer.slice(s, e), wrong.slice(s, e)).perPrompt);
    tick(e - s);
  }
  return out;
}

/**
 * Per site, per prompt: patched minus corrupted logit difference ([site][prompt]), from a PatchResult's
 * per-prompt values ([prompt, site]). Exact and attribution results have the same layout.
 */
export function effectsBySite(r: PatchResult): number[][] {
  const B = r.perPrompt.corrupted.length;
  const nSites = r.perPrompt.raw.length / B;
  return Array.from({ length: nSites }, (_, s) =>
    Array.from({ length: B }, (_, b) => r.perPrompt.raw[b * nSites + s] - r.perPrompt.corrupted[b]),
  );
}

function progressOf(nPrompts: number, tick: Tick): (done: number, total: number) => void {
  let reported = 0;
  return (done, total) => {
    const now = Math.floor((done / total) * nPrompts);
    if (now > reported) tick(now - reported);
    reported = Math.max(reported, now);
  };
}

/** Exact activation patching (the shared fast path) → [site][prompt] effects. */
export async function exactEffects(
  model: HookedTransformer,
  pairs: PairTokens,
  target: PatchTarget,
  tick: Tick = () => {},
): Promise<number[][]> {
  const r = await activationPatching(model, {
    clean: pairs.clean,
    corrupted: pairs.corrupted,
    answers: { answer: pairs.answer, wrong: pairs.wrong },
    target,
    onProgress: progressOf(pairs.clean.length, tick),
  });
  return effectsBySite(r);
}

/** Attribution patching of several targets from one forward/backward per pair → per target [site][prompt]. */
export function attributionEffects(
  model: HookedTransformer,
  pairs: PairTokens,
  targets: readonly AttributionTarget[],
  tick: Tick = () => {},
): number[][][] {
  const rs = attributionPatchingAll(model, {
    clean: pairs.clean,
    corrupted: pairs.corrupted,
    answers: { answer: pairs.answer, wrong: pairs.wrong },
    targets,
    onProgress: progressOf(pairs.clean.length, tick),
  });
  return rs.map(effectsBySite);
}
