/**
 * Per-prompt measurements the study needs, over batches of validated pairs. The study's bootstrap needs
 * one value per prompt, so every function here returns per-prompt values (means are taken later).
 *
 * Scope note: these are small adapters over the model's hook API, written here because the shared
 * analysis/patching modules were not yet available when the study was wired; conventions follow the
 * fixture's reference (TransformerLens): LayerNorm applied with the cached final scale; patching clean →
 * corrupted, normalised (patched - corrupted) / (clean - corrupted).
 */
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import type { HookSpec } from "../../model/hooks.ts";
import type { Tensor } from "../../tensor/tensor.ts";

/** The tokens of one group's pairs (all lists BOS-prefixed; clean[b] and corrupted[b] equally long). */
export interface PairTokens {
  clean: number[][];
  corrupted: number[][];
  answer: number[];
  wrong: number[];
}

export type Tick = (n?: number) => void;

function chunks(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
}

/** logit(answer) - logit(wrong) at each prompt's last real position, from [batch, 1, d_vocab] logits. */
export function finalLogitDiffs(
  lastLogits: Tensor,
  answer: readonly number[],
  wrong: readonly number[],
): number[] {
  const V = lastLogits.shape[2];
  return answer.map((a, b) => lastLogits.data[b * V + a] - lastLogits.data[b * V + wrong[b]]);
}

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
    const logits = model.run(tokens.slice(s, e), { logits: "last" });
    out.push(...finalLogitDiffs(logits, answer.slice(s, e), wrong.slice(s, e)));
    tick(e - s);
  }
  return out;
}

/** The logit-difference direction in the residual stream, per prompt: W_U[:, a] - W_U[:, w] (times ln_final.w if unfolded). */
function logitDiffDirections(
  model: HookedTransformer,
  answer: readonly number[],
  wrong: readonly number[],
): Float32Array[] {
  const { W_U, lnFinal } = model.weights;
  const [D, V] = W_U.shape;
  return answer.map((a, b) => {
    const d = new Float32Array(D);
    for (let i = 0; i < D; i++) {
      d[i] = W_U.data[i * V + a] - W_U.data[i * V + wrong[b]];
      if (lnFinal) d[i] *= lnFinal.w.data[i];
    }
    return d;
  });
}

/** (x - mean(x)) / scale · dir: a residual-stream component's contribution to the logit difference. */
function projectThroughFinalLn(x: Float32Array, scale: number, dir: Float32Array): number {
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - m) * dir[i];
  return s / scale;
}

export interface ResidualAttributions {
  /** "0_pre", "0_mid", ..., "final_post" (TransformerLens accumulated_resid with incl_mid). */
  accumulatedLabels: string[];
  accumulated: number[][];
  /** "embed", "pos_embed", "0_attn_out", "0_mlp_out", ... */
  decomposedLabels: string[];
  decomposed: number[][];
  /** [prompt][layer][head]: direct logit attribution of z @ W_O (no b_O). */
  heads: number[][][];
  /** Attention patterns at the final query position? No: full patterns are kept only for the requested heads. */
}

/**
 * From a clean cache run: the logit difference read off the accumulated residual stream, written by each
 * component (decomposed), and by each head — all through the final LayerNorm with its cached scale.
 */
export function residualAttributions(
  model: HookedTransformer,
  tokens: readonly number[][],
  answer: readonly number[],
  wrong: readonly number[],
  batchSize: number,
  tick: Tick = () => {},
): ResidualAttributions {
  const L = model.cfg.nLayers;
  const H = model.cfg.nHeads;
  const D = model.cfg.dModel;
  const accumulatedLabels: string[] = [];
  for (let l = 0; l < L; l++) accumulatedLabels.push(`${l}_pre`, `${l}_mid`);
  accumulatedLabels.push("final_post");
  const decomposedLabels = ["embed", "pos_embed"];
  for (let l = 0; l < L; l++) decomposedLabels.push(`${l}_attn_out`, `${l}_mlp_out`);
  const want = new Set<string>([
    "hook_embed",
    "hook_pos_embed",
    "ln_final.hook_scale",
    `blocks.${L - 1}.hook_resid_post`,
  ]);
  for (let l = 0; l < L; l++) {
    for (const h of [
      "hook_resid_pre",
      "hook_resid_mid",
      "hook_attn_out",
      "hook_mlp_out",
      "attn.hook_result",
    ]) {
      want.add(`blocks.${l}.${h}`);
    }
  }
  const out: ResidualAttributions = {
    accumulatedLabels,
    accumulated: [],
    decomposedLabels,
    decomposed: [],
    heads: [],
  };
  for (const [s, e] of chunks(tokens.length, batchSize)) {
    const { cache } = model.runWithCache(tokens.slice(s, e), {
      namesFilter: (n) => want.has(n),
      logits: "none",
    });
    const dirs = logitDiffDirections(model, answer.slice(s, e), wrong.slice(s, e));
    const P = cache.get("hook_embed").shape[1];
    const scale = cache.get("ln_final.hook_scale");
    cache.lengths.forEach((len, b) => {
      const pos = len - 1;
      const sc = scale.data[b * P + pos];
      const at = (name: string): Float32Array => {
        const off = (b * P + pos) * D;
        return cache.get(name).data.subarray(off, off + D);
      };
      const proj = (name: string): number => projectThroughFinalLn(at(name), sc, dirs[b]);
      const acc: number[] = [];
      const dec: number[] = [proj("hook_embed"), proj("hook_pos_embed")];
      const heads: number[][] = [];
      for (let l = 0; l < L; l++) {
        acc.push(proj(`blocks.${l}.hook_resid_pre`), proj(`blocks.${l}.hook_resid_mid`));
        dec.push(proj(`blocks.${l}.hook_attn_out`), proj(`blocks.${l}.hook_mlp_out`));
        const result = cache.get(`blocks.${l}.attn.hook_result`); // [b, p, H, D]
        const row: number[] = [];
        for (let h = 0; h < H; h++) {
          const off = ((b * P + pos) * H + h) * D;
          row.push(projectThroughFinalLn(result.data.subarray(off, off + D), sc, dirs[b]));
        }
        heads.push(row);
      }
      acc.push(proj(`blocks.${L - 1}.hook_resid_post`));
      out.accumulated.push(acc);
      out.decomposed.push(dec);
      out.heads.push(heads);
    });
    tick(e - s);
  }
  return out;
}

/** Attention patterns [head][query][key] of one prompt for the given (layer, head)s. */
export function attentionPatterns(
  model: HookedTransformer,
  tokens: readonly number[],
  heads: readonly { layer: number; head: number }[],
): number[][][] {
  const names = new Set(heads.map((h) => `blocks.${h.layer}.attn.hook_pattern`));
  const { cache } = model.runWithCache([tokens], { namesFilter: (n) => names.has(n), logits: "none" });
  const P = tokens.length;
  return heads.map(({ layer, head }) => {
    const pat = cache.get(`blocks.${layer}.attn.hook_pattern`); // [1, H, P, P]
    return Array.from({ length: P }, (_, q) =>
      Array.from(pat.data.subarray((head * P + q) * P, (head * P + q) * P + P)),
    );
  });
}

/** What one exact patch replaces: a hook, and optionally one position, head or neuron of it. */
export interface PatchTarget {
  label: string;
  /** Block hook, e.g. "hook_attn_out", "attn.hook_z", "mlp.hook_post", "hook_resid_pre". */
  hook: string;
  layer: number;
  position?: number;
  head?: number;
  neuron?: number;
}

/** Axis layout of a block hook: which axis holds positions and heads, and the per-position width. */
function hookLayout(hook: string): { headAxis: "none" | "bphd" | "bhqk" } {
  if (hook === "attn.hook_pattern" || hook === "attn.hook_attn_scores") return { headAxis: "bhqk" };
  if (/^attn\.hook_(q|k|v|z|result)$/.test(hook)) return { headAxis: "bphd" };
  return { headAxis: "none" };
}

/** Copies the selected slice of `clean` into `act` (both the same shape). */
function patchInPlace(act: Tensor, clean: Tensor, t: PatchTarget): void {
  const { headAxis } = hookLayout(t.hook);
  const shape = act.shape;
  if (headAxis === "bhqk") {
    const [B, H, Q, K] = shape;
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        if (t.head !== undefined && h !== t.head) continue;
        for (let q = 0; q < Q; q++) {
          if (t.position !== undefined && q !== t.position) continue;
          const off = ((b * H + h) * Q + q) * K;
          act.data.set(clean.data.subarray(off, off + K), off);
        }
      }
    return;
  }
  const [B, P] = shape;
  const inner = act.size / (B * P);
  const H = headAxis === "bphd" ? shape[2] : 1;
  const w = inner / H;
  for (let b = 0; b < B; b++)
    for (let p = 0; p < P; p++) {
      if (t.position !== undefined && p !== t.position) continue;
      for (let h = 0; h < H; h++) {
        if (t.head !== undefined && h !== t.head) continue;
        const off = (b * P + p) * inner + h * w;
        if (t.neuron !== undefined) act.data[off + t.neuron] = clean.data[off + t.neuron];
        else act.data.set(clean.data.subarray(off, off + w), off);
      }
    }
}

/**
 * Exact activation patching, clean → corrupted: for each target, the corrupted run with the target's
 * activation replaced by the clean run's, per prompt `patched - corrupted` logit difference. Each run
 * starts at the target's layer from the cached corrupted residual (earlier layers are unchanged).
 */
export function exactPatching(
  model: HookedTransformer,
  pairs: PairTokens,
  targets: readonly PatchTarget[],
  batchSize: number,
  tick: Tick = () => {},
): number[][] {
  const perTarget: number[][] = targets.map(() => []);
  const hooks = new Set(targets.map((t) => `blocks.${t.layer}.${t.hook}`));
  const layers = new Set(targets.map((t) => t.layer));
  for (const [s, e] of chunks(pairs.clean.length, batchSize)) {
    const answer = pairs.answer.slice(s, e);
    const wrong = pairs.wrong.slice(s, e);
    const clean = model.runWithCache(pairs.clean.slice(s, e), {
      namesFilter: (n) => hooks.has(n),
      logits: "none",
    });
    const corrupted = model.runWithCache(pairs.corrupted.slice(s, e), {
      namesFilter: (n) => [...layers].some((l) => n === `blocks.${l}.hook_resid_pre`),
      logits: "last",
    });
    const base = finalLogitDiffs(corrupted.logits!, answer, wrong);
    targets.forEach((t, i) => {
      const name = `blocks.${t.layer}.${t.hook}`;
      const cleanAct = clean.cache.get(name);
      const residual = corrupted.cache.get(`blocks.${t.layer}.hook_resid_pre`).clone();
      const spec: HookSpec = [name, (act) => patchInPlace(act, cleanAct, t)];
      const logits = model.run(residual, {
        startAtLayer: t.layer,
        lengths: corrupted.lengths,
        logits: "last",
        fwdHooks: [spec],
      });
      finalLogitDiffs(logits, answer, wrong).forEach((ld, b) => {
        perTarget[i].push(ld - base[b]);
      });
      tick(e - s);
    });
  }
  return perTarget;
}
